-- wrk script: authorised writes of a 200-byte JSON body (PUT /channels/bench with a JWT bearer).
local token = os.getenv("SLUICE_BENCH_TOKEN") or ""
local body = '{"task":"compress","file":"video-0000000001.mp4","size":1048576,"owner":"worker-1",'
  .. '"tags":["bench","sluice","json"],"note":"' .. string.rep("x", 200) .. '"}'
body = string.sub(body, 1, 198) .. '"}'
wrk.method = "PUT"
wrk.path = "/channels/bench"
wrk.body = body
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
