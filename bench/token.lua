-- wrk script: token issuance (POST /token) with an API key as the credential, asking for one channel.
local key = os.getenv("SLUICE_BENCH_KEY") or ""
wrk.method = "POST"
wrk.path = "/token"
wrk.body = '{"channels":["bench"]}'
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
