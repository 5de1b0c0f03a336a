"""A raw WebSocket client for hostile traffic: blocking TCP socket, hand-built (masked or not)
frames, no help from a library. It does the upgrade, sends any frame it is told to, and reads the
server's frames one by one, so a test sees exactly what came on the wire (close codes, batching,
pongs)."""
import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Closed(Exception):
    """The TCP connection ended (EOF or reset) before what the caller waited for."""


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    """One client frame. Masked unless mask=False (which a server must refuse with 1002)."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    body = bytes(c ^ key[i & 3] for i, c in enumerate(payload))
    return head + key + body


class RawWS:
    def __init__(self, host, port, path="/connection/websocket", rcvbuf=None, timeout=10,
                 answer_pings=True, upgrade=True, headers=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.answer_pings = answer_pings  # answer the server's protocol ping "{}" with "{}"
        self.pongs = []  # payloads of WebSocket pongs received
        self.status = None
        self.headers = {}
        self.close_code = None
        self.close_reason = None
        self.next_id = 1
        self.kept = []  # objects a reply() read past, returned by the next recv_objs
        if upgrade:
            self.upgrade(path, headers)

    # ---- handshake ----------------------------------------------------------------------------

    def upgrade(self, path, headers=None):
        """headers: more (name, value) pairs for the upgrade request (a signed upgrade)."""
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or []))
        req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()
        self.sock.sendall(req)
        while b"\r\n\r\n" not in self.buf:
            b = self.sock.recv(65536)
            if not b:
                raise Closed("EOF during the handshake: %r" % self.buf)
            self.buf += b
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            assert self.headers.get("sec-websocket-accept") == want, self.headers
        return self.status

    # ---- sending ------------------------------------------------------------------------------

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0):
        self.sock.sendall(frame(opcode, payload, fin, mask, rsv))

    def send_text(self, text):
        self.send_frame(TEXT, text)

    def send_json(self, *objs):
        """Several objects go into one frame, newline-separated."""
        self.send_text("\n".join(json.dumps(o, separators=(",", ":")) for o in objs))

    def cmd(self, method, body=None, send=True):
        """A command with the next id; returns (id, obj). send=False only builds it."""
        i = self.next_id
        self.next_id += 1
        obj = {method: {} if body is None else body, "id": i}
        if send:
            self.send_json(obj)
        return i, obj

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- receiving ----------------------------------------------------------------------------

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout("timed out waiting for a frame")
            self.sock.settimeout(left)
            try:
                b = self.sock.recv(65536)
            except ConnectionResetError as e:
                raise Closed("connection reset") from e
            if not b:
                raise Closed("EOF")
            self.buf += b

    def recv_frame(self, timeout=5):
        """(fin, opcode, payload) of the next frame from the server (which must not be masked)."""
        deadline = time.time() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not (b1 & 0x80), "server frames must not be masked"
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self, timeout=5):
        """The next whole message: ("text", bytes) or ("binary", bytes), or ("close", code,
        reason) after the server's close frame (which is answered). WebSocket pings are answered
        with pongs; pongs are recorded in self.pongs."""
        deadline = time.time() + timeout
        parts, kind = [], None
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.time()))
            if op == PING:
                self.send_frame(PONG, payload)
                continue
            if op == PONG:
                self.pongs.append(payload)
                continue
            if op == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                self.close_code, self.close_reason = code, reason
                try:
                    self.send_frame(CLOSE, payload[:2])
                except OSError:
                    pass
                return ("close", code, reason)
            if op in (TEXT, BINARY):
                kind = "text" if op == TEXT else "binary"
                parts = [payload]
            elif op == CONT:
                parts.append(payload)
            else:
                raise AssertionError("unexpected opcode %d" % op)
            if fin:
                return (kind, b"".join(parts))

    def recv_objs(self, timeout=5):
        """The JSON objects of the next text message (one per line), or those a reply() left
        behind in its frame. A server ping ({}) is answered (when answer_pings) and still
        returned. A close frame raises AssertionError."""
        if self.kept:
            objs, self.kept = self.kept, []
            return objs
        m = self.recv_message(timeout)
        if m[0] == "close":
            raise AssertionError("closed with %d %r while waiting for a message" % (m[1], m[2]))
        assert m[0] == "text", m
        return self._lines(m[1])

    def _lines(self, data):
        out = []
        for line in data.decode("utf-8").split("\n"):
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj == {}:
                if self.answer_pings:
                    self.send_text("{}")
                out.append(obj)  # callers that care see the ping too
                continue
            out.append(obj)
        return out

    def reply(self, id, timeout=5, pushes=None):
        """Wait for the reply with this id; other objects before it go to `pushes` (a list) if
        given. Objects after it in the same frame are kept for the next recv_objs."""
        deadline = time.time() + timeout
        while True:
            objs = self.recv_objs(max(0.0, deadline - time.time()))
            for k, obj in enumerate(objs):
                if obj.get("id") == id:
                    self.kept = objs[k + 1:] + self.kept
                    return obj
                if pushes is not None and obj != {}:
                    pushes.append(obj)

    def call(self, method, body=None, timeout=5):
        i, _ = self.cmd(method, body)
        return self.reply(i, timeout)

    def wait_close(self, timeout=5, seen=None):
        """Read until the server's close frame; returns its code. Objects read on the way go to
        `seen`. Fails if the TCP connection ends without a close frame."""
        deadline = time.time() + timeout
        while True:
            try:
                m = self.recv_message(max(0.0, deadline - time.time()))
            except Closed as e:
                raise AssertionError("TCP ended without a close frame (%s)" % e) from None
            if m[0] == "close":
                return m[1]
            if m[0] == "text" and seen is not None:
                try:
                    seen.extend(self._lines(m[1]))
                except ValueError:
                    seen.append(m[1])

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
