-- A mock JSON API for tests: an in-memory list of items behind GET, POST
-- and DELETE, on loopback only. Run: lurk examples/mock_api.lua [port]
-- (port 0 or none: any free port, printed), then e.g.
--   curl -s localhost:PORT/items -d '{"name":"x"}'; curl -s localhost:PORT/items
-- LURK_EXAMPLE_ONCE=1 makes it answer its own requests and exit (for CI).
local items, next_id = {}, 1
local srv = assert(http.serve({ host = "127.0.0.1", port = tonumber(arg and arg[1]) or 0 }, function(req)
  local id = tonumber(req.path:match("^/items/(%d+)$"))
  if req.path == "/items" and req.method == "GET" then
    local list = {}
    for _, it in pairs(items) do list[#list + 1] = it end
    table.sort(list, function(a, b) return a.id < b.id end)
    return 200, {}, { items = list }
  elseif req.path == "/items" and req.method == "POST" then
    local body, err = req:json()
    if type(body) ~= "table" or type(body.name) ~= "string" then
      return 422, {}, { error = "a JSON object with a name is required", detail = err and tostring(err) }
    end
    local it = { id = next_id, name = body.name }
    items[next_id], next_id = it, next_id + 1
    return 201, { location = "/items/" .. it.id }, it
  elseif id and req.method == "GET" then
    if not items[id] then return 404, {}, { error = "no such item" } end
    return 200, {}, items[id]
  elseif id and req.method == "DELETE" then
    items[id] = nil
    return 204
  end
  return 404, {}, { error = "not found" }
end))
print("mock API on " .. srv.url)

if os.getenv("LURK_EXAMPLE_ONCE") then
  local r = assert(http.post(srv.url .. "/items", { json = { name = "first" } }))
  assert(r.status == 201, r.status)
  r = assert(http.get(srv.url .. "/items"))
  print(r.body)
  srv:close()
end
