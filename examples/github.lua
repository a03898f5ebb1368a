-- List a GitHub user's public repositories, most starred first, following the
-- API's pagination (Link: <...>; rel="next"). Talks to api.github.com: not run
-- by the tests. GITHUB_TOKEN (optional) raises the rate limit.
--
--   lurk examples/github.lua torvalds
local user = arg[1] or "torvalds"
local token = os.getenv("GITHUB_TOKEN")
local api = http.client {
  base_url = "https://api.github.com",
  headers = { accept = "application/vnd.github+json", ["x-github-api-version"] = "2022-11-28" },
  timeout = 20,
  retries = 2,
}

local repos, url = {}, "/users/" .. user .. "/repos?per_page=100"
while url do
  local res = assert(api:get(url, { bearer = token }))
  assert(res:expect(200))
  for _, r in ipairs(res:json()) do repos[#repos + 1] = r end
  url = (res.headers.link or ""):match('<([^>]+)>; rel="next"')
end
table.sort(repos, function(a, b) return a.stargazers_count > b.stargazers_count end)
for i = 1, math.min(#repos, 15) do
  local r = repos[i]
  print(("%6d  %-30s %s"):format(r.stargazers_count, r.name, r.description ~= json.null and r.description or ""))
end
print(("%d repositories; rate limit left: %s"):format(#repos, tostring(api:get("/rate_limit"):json().rate.remaining)))
