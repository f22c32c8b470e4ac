-- Each request signs as a different person: tokens are read from a file, one a line,
-- and every wrk connection walks its own slice of them.
local tokens = {}
local counter = 0
local path = os.getenv("PARAPHE_BENCH_TOKENS")
local petition = os.getenv("PARAPHE_BENCH_PETITION")

function init(args)
  for line in io.lines(path) do
    tokens[#tokens + 1] = line
  end
  counter = math.random(1, #tokens)
end

-- PARAPHE_BENCH_PAUSE_MS paces each connection: a pause after every answer.
local pause = tonumber(os.getenv("PARAPHE_BENCH_PAUSE_MS") or "")
if pause then
  function delay()
    return pause
  end
end

function request()
  counter = counter % #tokens + 1
  return wrk.format("POST", "/api/petitions/" .. petition .. "/signatures",
    {["Authorization"] = "Bearer " .. tokens[counter]}, "")
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

accepted, repeated, other = 0, 0, 0
function response(status, headers, body)
  if status == 202 then accepted = accepted + 1
  elseif status == 200 then repeated = repeated + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local a, r, o = 0, 0, 0
  for _, thread in ipairs(threads) do
    a = a + thread:get("accepted")
    r = r + thread:get("repeated")
    o = o + thread:get("other")
  end
  io.write(string.format("answers %d %d %d\n", a, r, o))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("latency_p%d_us %d\n", p, latency:percentile(p)))
  end
end
