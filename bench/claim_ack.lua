-- wrk script: exclusive claim + acknowledge cycle. Claims are held by the token's principal, not by
-- a connection, so any connection of this thread may acknowledge what another claimed.
local token = os.getenv("SLUICE_BENCH_TOKEN") or ""
local pending = {}
local auth = "Bearer " .. token

request = function()
  local id = table.remove(pending)
  if id then
    return wrk.format("POST", "/channels/work/acknowledge",
      {["Authorization"] = auth, ["Content-Type"] = "application/json"},
      '{"message_ids":["' .. id .. '"]}')
  end
  return wrk.format("GET", "/channels/work?exclusive=true&limit=1", {["Authorization"] = auth})
end

response = function(status, headers, body)
  local id = string.match(body, '"id":"(%x+)"')
  if id then table.insert(pending, id) end
end
