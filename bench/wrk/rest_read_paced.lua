-- wrk script for bench/sustained.sh: GET /v1/jobs?limit=20 of the ERecruit
-- connection, each connection pausing DELAY_MS between requests.
--   wrk ... -s rest_read_paced.lua URL -- DELAY_MS
local delay_ms = 10

function init(args)
  delay_ms = tonumber(args[1] or "10")
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TENANT_KEY")
  wrk.headers["X-Connection"] = "er"
end

function delay()
  return delay_ms
end
