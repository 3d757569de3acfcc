-- wrk script for the HTTP benchmark: POST /transform/cummingsify with a poem
-- of N bytes (the script's argument, default 200) on keep-alive connections,
-- checking that every answer is 200 with the lowercased poem as its body.
--
--   wrk -t1 -c8 -d3s -s bench/http_post.lua http://127.0.0.1:8080/transform/cummingsify -- 200
--
-- Besides wrk's own report it prints one line, "wrk-result {JSON}", with the
-- counts and latency percentiles (microseconds) that bench/run.py reads.

local words = {
  "THE", "MOON", "IS", "A", "SILVER", "SPOON", "AND", "I", "HAVE", "WALKED", "ALL", "NIGHT",
  "THROUGH", "RAIN", "WHERE", "LITTLE", "SPARROWS", "SING", "OF", "LOVE", "BENEATH", "SKY",
}

-- Upper-case words in lines of at most 60 characters, cut to size bytes
-- ending in a newline.
local function makePoem(size)
  local pieces, length, column, i = {}, 0, 0, 0
  while length < size do
    local word = words[i % #words + 1]
    i = i + 1
    local piece
    if column == 0 then
      piece, column = word, #word
    elseif column + 1 + #word > 60 then
      piece, column = "\n" .. word, #word
    else
      piece, column = " " .. word, column + 1 + #word
    end
    table.insert(pieces, piece)
    length = length + #piece
  end
  return string.sub(table.concat(pieces), 1, size - 1) .. "\n"
end

local expected
-- Per-thread counts, read by done() through thread:get().
mismatches = 0
badStatus = 0

function init(args)
  local poem = makePoem(tonumber(args[1]) or 200)
  expected = string.lower(poem)
  wrk.method = "POST"
  wrk.body = poem
  wrk.headers["Content-Type"] = "text/plain; charset=utf-8"
end

function response(status, headers, body)
  if status ~= 200 then
    badStatus = badStatus + 1
  elseif body ~= expected then
    mismatches = mismatches + 1
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local mismatch, status = 0, 0
  for _, thread in ipairs(threads) do
    mismatch = mismatch + thread:get("mismatches")
    status = status + thread:get("badStatus")
  end
  local e = summary.errors
  io.write(string.format(
    'wrk-result {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,'
      .. '"timeout":%d,"status":%d,"mismatch":%d},"latency_us":{"p50":%.1f,"p90":%.1f,"p99":%.1f,"max":%.1f}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, status, mismatch,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
