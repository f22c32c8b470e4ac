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

-- PARAPHE_BENCH_RATE holds the thread to a schedule of that many requests a second: each
-- request waits for its slot (1/rate after the previous one), whichever connection is free
-- sends it, and a late server is caught up with at once. Offered rate, not a closed loop
-- whose rate falls when answers slow down (which is what a pause per connection measures).
local rate = tonumber(os.getenv("PARAPHE_BENCH_RATE") or "")
if rate then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } paraphe_timespec;
    int clock_gettime(int clock_id, paraphe_timespec *tp);
  ]]
  local clock = ffi.new("paraphe_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
    return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
  end
  local interval, slot = 1000 / rate, nil
  function delay()
    local now = now_ms()
    slot = (slot or now) + interval
    return math.max(0, slot - now)
  end
end

-- Each request also comes from one of PARAPHE_BENCH_CLIENTS addresses (10.0.0.0/16), named
-- in X-Forwarded-For as a proxy would (loopback is a trusted proxy by default, and the
-- bench's proxy, nginx, forwards the header): the signing limit per client is then paid as in
-- production, where the proxy forwards every request (requests from the machine itself,
-- loopback, are exempt from it). Each client stays well under that limit.
local clients = tonumber(os.getenv("PARAPHE_BENCH_CLIENTS") or "4096")

function request()
  counter = counter % #tokens + 1
  local client = counter % clients
  return wrk.format("POST", "/api/petitions/" .. petition .. "/signatures",
    {["Authorization"] = "Bearer " .. tokens[counter],
     ["X-Forwarded-For"] = string.format("10.0.%d.%d", math.floor(client / 256) % 256,
                                         client % 256)}, "")
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
