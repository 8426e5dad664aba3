-- wrk script for bench/sustained.sh: ERP create-job with a unique title on
-- every request, each connection pausing DELAY_MS between requests so that
-- the load is steady rather than as fast as possible.
--   wrk ... -s erp_create_paced.lua URL -- TAG DELAY_MS
local counter, tag, delay_ms = 0, "run", 10
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end

function init(args)
  tag = args[1] or tostring(os.time())
  delay_ms = tonumber(args[2] or "10")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-Key"] = os.getenv("ERP_API_KEY")
end

function delay()
  return delay_ms
end

function request()
  counter = counter + 1
  local body = string.format('{"action":"create_job","source_name":"Main_ERP",'
    .. '"title":"Sustained %s t%d #%d","department":"IT","job_type":"full-time",'
    .. '"workplace_type":"hybrid","location_city":"Riyadh","location_country":"Saudi Arabia",'
    .. '"description":"We are looking for an experienced software engineer...",'
    .. '"application_url":"https://careers.example.com/job/1","auto_publish":true}',
    tag, tid, counter)
  return wrk.format(nil, nil, nil, body)
end
