-- wrk script: exclusive claim + acknowledge cycle. Claims are held by the token's principal, not by
-- a connection, so any connection of this thread may acknowledge what another claimed.
-- Both requests are formatted once per thread (in init, once wrk has set the Host header): a
-- message id is always 16 hex digits, so an ack is a fixed head, the id and a fixed tail. Before,
-- every request went through wrk.format, which kept the load tool at 99-100 % of its core.
local token = os.getenv("SLUICE_BENCH_TOKEN") or ""
local pending, npending = {}, 0
local claim, ack_head, ack_tail

function init(args)
  local auth = "Bearer " .. token
  claim = wrk.format("GET", "/channels/work?exclusive=true&limit=1", {["Authorization"] = auth})
  local ack = wrk.format("POST", "/channels/work/acknowledge",
    {["Authorization"] = auth, ["Content-Type"] = "application/json"},
    '{"message_ids":["0123456789abcdef"]}')
  local at = assert(string.find(ack, "0123456789abcdef", 1, true))
  ack_head, ack_tail = string.sub(ack, 1, at - 1), string.sub(ack, at + 16)
end

function request()
  if npending > 0 then
    local id = pending[npending]
    pending[npending] = nil
    npending = npending - 1
    return ack_head .. id .. ack_tail
  end
  return claim
end

function response(status, headers, body)
  local id = string.match(body, '"id":"(%x+)"')
  if id and #id == 16 then
    npending = npending + 1
    pending[npending] = id
  end
end
