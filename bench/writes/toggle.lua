-- wrk script for bench/writes: POST .../environments/<env>/flags/<flag>/toggle with an admin
-- token, spread over flags <prefix>0 .. <prefix><flags - 1>.
--
--   wrk -t2 -c32 -d10s --latency -s toggle.lua http://127.0.0.1:PORT -- \
--     TOKEN PROJECT ENV PREFIX FLAGS WRK_THREADS
--
-- wrk does not tell a script which connection a request goes out on, so each wrk thread
-- takes its own share of the flags (flag i belongs to thread i % WRK_THREADS) and cycles
-- through it. With FLAGS = connections, a thread's share has as many flags as the thread
-- has connections, and the requests it has in flight are nearly always on distinct flags.
-- Two toggles of one flag in the same commit group are still two revisions.
--
-- Every answer that is not 2xx is counted; done() prints "non-2xx responses: N" and the
-- first such answer, which bench/writes/run.sh checks.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local requests = {}
local next_request = 0
bad = 0
first_bad = ""

function init(args)
  local token, project, env, prefix = args[1], args[2], args[3], args[4]
  local flags, wrk_threads = tonumber(args[5]), tonumber(args[6])
  if not (token and project and env and prefix and flags and wrk_threads) then
    error("toggle.lua: arguments are TOKEN PROJECT ENV PREFIX FLAGS WRK_THREADS")
  end
  local headers = { ["Authorization"] = "Bearer " .. token }
  for flag = index, flags - 1, wrk_threads do
    local path = "/v1/projects/" .. project .. "/environments/" .. env .. "/flags/" ..
      prefix .. flag .. "/toggle"
    table.insert(requests, wrk.format("POST", path, headers, ""))
  end
  if #requests == 0 then
    error("toggle.lua: thread " .. index .. " has no flag (FLAGS < WRK_THREADS)")
  end
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    if bad == 0 then
      first_bad = status .. " " .. string.sub(body or "", 1, 300)
    end
    bad = bad + 1
  end
end

function done(summary, latency, requests_done)
  local total, first = 0, ""
  for _, thread in ipairs(threads) do
    local n = thread:get("bad")
    total = total + n
    if n > 0 and first == "" then
      first = thread:get("first_bad")
    end
  end
  io.write(string.format("non-2xx responses: %d\n", total))
  if total > 0 then
    io.write("first non-2xx response: " .. first .. "\n")
  end
end
