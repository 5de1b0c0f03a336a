-- wrk script: signed writes (RFC 9421) of the same 200-byte body as put.lua, PUT /channels/bench.
-- wrk cannot sign, so every request was signed beforehand by bench_sign (one line each:
-- Content-Digest, Signature-Input, Signature, tab-separated; file in SLUICE_SIGNED_FILE) and is
-- sent once, in order. Running out would mean replaying nonces, which sluiced refuses (401, and
-- bench/lib.sh's wrk_rate then refuses the figure): sign more (SIGNED_PER_SECOND in signed.sh).
local body = '{"task":"compress","file":"video-0000000001.mp4","size":1048576,"owner":"worker-1",'
  .. '"tags":["bench","sluice","json"],"note":"' .. string.rep("x", 200) .. '"}'
body = string.sub(body, 1, 198) .. '"}'
local reqs = {}
local n, i = 0, 0

function init(args)
  local f = assert(io.open(os.getenv("SLUICE_SIGNED_FILE"), "r"))
  for line in f:lines() do
    local d, si, s = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)$")
    n = n + 1
    reqs[n] = wrk.format("PUT", "/channels/bench", {
      ["Host"] = os.getenv("SLUICE_SIGNED_HOST"),
      ["Content-Type"] = "application/json",
      ["Content-Digest"] = d,
      ["Signature-Input"] = si,
      ["Signature"] = s,
    }, body)
  end
  f:close()
end

function request()
  i = i + 1
  if i > n then
    i = 1 -- replays from here on: refused, and the run's figure with them
  end
  return reqs[i]
end
