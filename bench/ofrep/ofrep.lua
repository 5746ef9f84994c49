-- wrk script for bench/ofrep: POST an OFREP evaluation with a client key, the body's
-- targeting key cycling through user-1 .. user-<KEYS>.
--
--   wrk -t2 -c200 -d10s --latency -s ofrep.lua http://127.0.0.1:PORT -- \
--     CLIENT_KEY PATH KEYS MODE [EXPECT]
--
-- PATH is /ofrep/v1/evaluate/flags/<key> (one flag) or /ofrep/v1/evaluate/flags (all).
-- Every request is built once, in init(): the measured loop only hands out prepared
-- strings. Each wrk thread starts at its own place in the cycle.
--
-- MODE "check": every answer is read; one whose status is not 2xx, or whose body lacks
-- EXPECT (a plain substring), is counted, and done() prints "bad responses: N" and the
-- first of them, which bench/ofrep/run.sh checks. MODE "fast": response() is dropped, so
-- wrk neither buffers headers and bodies nor calls into Lua per answer (the /healthz runs,
-- which have no script, pay neither); wrk itself still counts answers of 4xx and 5xx
-- ("Non-2xx or 3xx responses") and socket errors.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local requests = {}
local next_request = 0
local expect = nil
bad = 0
checked = 0
first_bad = ""
mode = ""

function init(args)
  local client_key, path, keys = args[1], args[2], tonumber(args[3])
  mode = args[4]
  expect = args[5]
  if not (client_key and path and keys and keys >= 1 and (mode == "check" or mode == "fast")) then
    error("ofrep.lua: arguments are CLIENT_KEY PATH KEYS check|fast [EXPECT]")
  end
  local headers = {
    ["Authorization"] = "Bearer " .. client_key,
    ["Content-Type"] = "application/json",
  }
  for n = 1, keys do
    local body = string.format('{"context":{"targetingKey":"user-%d","country":"FR",' ..
      '"email":"x@example.com","plan":"pro","beta":false}}', n)
    requests[n] = wrk.format("POST", path, headers, body)
  end
  -- Threads do not know how many there are (setup() runs in another Lua state): a
  -- large prime stride keeps their starting points apart.
  next_request = (index * 7919) % keys
  if mode == "fast" then
    response = nil
  end
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

function response(status, headers, body)
  checked = checked + 1
  if status < 200 or status > 299 or (expect and not string.find(body or "", expect, 1, true)) then
    if bad == 0 then
      first_bad = status .. " " .. string.sub(body or "", 1, 300)
    end
    bad = bad + 1
  end
end

function done(summary, latency, requests_done)
  if #threads == 0 or threads[1]:get("mode") ~= "check" then
    return
  end
  local total, seen, first = 0, 0, ""
  for _, thread in ipairs(threads) do
    local n = thread:get("bad")
    total = total + n
    seen = seen + thread:get("checked")
    if n > 0 and first == "" then
      first = thread:get("first_bad")
    end
  end
  io.write(string.format("checked responses: %d\n", seen))
  io.write(string.format("bad responses: %d\n", total))
  if total > 0 then
    io.write("first bad response: " .. first .. "\n")
  end
end
