-- wrk script: POST unique expense claims to /api/v1/claims.
-- usage: wrk -s submit_claims.lua URL -- TOKEN TAG
local counter = 0
local thread_no = 0
local failures = 0
local threads = {}
local applicants = { {"E0011", "D02"}, {"E0012", "D02"}, {"E0021", "D03"}, {"E0022", "D03"},
                     {"E0031", "D04"}, {"E0041", "D05"}, {"E0004", "D01"} }
local categories = { "travel", "lodging", "transport", "office", "communication", "meeting" }
local amounts = { "128.50", "860.00", "2450.30", "5200.00", "7300.00", "1999.99", "56000.00" }

function setup(thread)
  thread_no = thread_no + 1
  thread:set("thread_no", thread_no)
  table.insert(threads, thread)
end

function init(args)
  token = args[1]
  tag = args[2] or "W"
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
end

function request()
  counter = counter + 1
  local who = applicants[(counter % #applicants) + 1]
  local body = string.format(
    '{"external_id":"%s-%d-%d","applicant_id":"%s","department_id":"%s","title":"bench",' ..
    '"lines":[{"category":"%s","amount":"%s","expense_date":"2026-11-02"}]}',
    tag, thread_no, counter, who[1], who[2], categories[(counter % #categories) + 1],
    amounts[(counter % #amounts) + 1])
  return wrk.format("POST", "/api/v1/claims", headers, body)
end

function response(status, headers, body)
  if status ~= 201 then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + (thread:get("failures") or 0)
  end
  io.write(string.format("WRK_RESULT requests=%d failures=%d seconds=%.3f p50_ms=%.1f p99_ms=%.1f\n",
    summary.requests, failed, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
