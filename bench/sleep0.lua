-- 10,000 tasks each doing lurk.sleep(0) 100 times: the cost of a task switch.
local ntasks, rounds = tonumber(arg[1]) or 10000, tonumber(arg[2]) or 100
local tasks = {}
local s0, c0, t0 = lurk.stats(), os.clock(), lurk.now()
for i = 1, ntasks do
  tasks[i] = lurk.spawn(function() for _ = 1, rounds do lurk.sleep(0) end end)
end
for i, r in ipairs(lurk.wait(tasks)) do assert(r[1], ("task %d: %s"):format(i, tostring(r[2]))) end
local dt, cpu, s1 = lurk.now() - t0, os.clock() - c0, lurk.stats()
local n = ntasks * rounds
print(("sleep(0): %d tasks x %d = %d switches in %.3f s: %.2f M/s, %.0f ns CPU each, %d io_uring_enter (%.5f per switch)")
  :format(ntasks, rounds, n, dt, n / dt / 1e6, cpu / n * 1e9, s1.enters - s0.enters, (s1.enters - s0.enters) / n))
