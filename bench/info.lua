-- wrk script: one cheap authorised request (GET /channels/bench/info with a JWT bearer), so that the
-- revocation check is a visible part of its cost.
local token = os.getenv("SLUICE_BENCH_TOKEN") or ""
wrk.method = "GET"
wrk.path = "/channels/bench/info"
wrk.headers["Authorization"] = "Bearer " .. token
