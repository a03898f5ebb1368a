-- json module: RFC 8259 round trips, strictness, error values, limits and pretty printing.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

-- Deep comparison of decoded values; also checks array metatables match.
local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a ~= a and b ~= b then return true end -- both NaN
    return a == b
  end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function roundtrip(v, msg)
  local text, err = json.encode(v)
  t.ok(text, (msg or "encode") .. ": " .. tostring(err))
  local back, derr = json.decode(text)
  t.ok(back ~= nil, (msg or "decode") .. ": " .. tostring(derr))
  t.ok(same(v, back), (msg or "round trip") .. " via " .. text)
  t.eq(json.encode(back), text, msg)
  return text
end

-- Scalars: every value type.
t.eq(json.encode(true), "true")
t.eq(json.encode(false), "false")
t.eq(json.encode(json.null), "null")
t.eq(json.encode(nil), "null")
t.eq(json.encode(0), "0")
t.eq(json.encode(-7), "-7")
t.eq(json.encode(1.5), "1.5")
t.eq(json.encode(0.1), "0.1")
t.eq(json.encode(-0.0), "-0")
t.eq(json.encode("hi"), '"hi"')
t.eq(json.decode("true"), true)
t.eq(json.decode("false"), false)
t.eq(json.decode("null"), json.null)
t.eq(json.decode("42"), 42)
t.eq(json.decode("-0.5e1"), -5)
t.eq(json.decode("1E2"), 100)
t.eq(json.decode("1e-2"), 0.01)
t.eq(json.decode('"hi"'), "hi")
t.eq(1 / json.decode("-0"), -math.huge, "-0 keeps its sign")
t.ok(json.null, "json.null is truthy")
t.eq(json.null, json.null)
t.eq(type(json.null), "userdata")
for _, v in ipairs({ 0, 1, -1, 3.25, 1e-300, 1e300, -2.5e-7, 123456789.125, 1 / 3, math.pi, 5e-324 }) do
  roundtrip(v, "number " .. tostring(v))
end
for _, s in ipairs({ "", "a", "héllo wörld", "日本語", "😀", "tab\there", "nul\0byte", "\1\2\31\127" }) do
  roundtrip(s, "string")
end
roundtrip(true)
roundtrip(false)

-- Escapes in both directions.
t.eq(json.encode('"\\/\b\f\n\r\t'), [["\"\\/\b\f\n\r\t"]], "short escapes, '/' not escaped")
t.eq(json.encode("\0\1\31"), [["\u0000\u0001\u001f"]])
t.eq(json.decode([["\"\\\/\b\f\n\r\t"]]), '"\\/\b\f\n\r\t')
t.eq(json.decode([["\u0041\u00e9\u20AC\uFFFF"]]), "Aé€\239\191\191")
t.eq(json.decode([["\u0000"]]), "\0")
t.eq(json.decode([["\ud83d\ude00"]]), "😀", "surrogate pair")
t.eq(json.decode([["\uD834\uDD1E"]]), "𝄞", "upper-case surrogate pair")
t.eq(json.decode([["\udbff\udfff"]]), "\244\143\191\191", "U+10FFFF")
t.eq(json.decode([["a\u00e9b\nc"]]), "a\195\169b\nc", "mixed plain and escaped")
t.eq(json.decode('"' .. string.rep("x", 10000) .. '\\n"'), string.rep("x", 10000) .. "\n")

-- Nested structures, arrays and objects.
roundtrip({ 1, 2, 3 }, "array")
roundtrip({ a = 1, b = "two", c = { true, false, json.null } }, "object")
roundtrip({ { { { { "deep" } } } }, { x = { y = { z = {} } } } }, "nested")
roundtrip({ users = { { name = "ann", tags = { "a", "b" } }, { name = "bob", tags = json.array() } } })
local doc = json.decode(' { "a" : [ 1 , { "b" : null } , [ ] ] , "c" : { } } ')
t.eq(doc.a[1], 1)
t.eq(doc.a[2].b, json.null)
t.eq(#doc.a[3], 0)
t.eq(getmetatable(doc.a), json.array_mt, "decoded arrays carry array_mt")
t.eq(getmetatable(doc.c), nil, "decoded objects have no metatable")
t.eq(json.encode(doc), '{"a":[1,{"b":null},[]],"c":{}}')
t.eq(json.encode(json.decode("[null,null]")), "[null,null]", "null array elements are kept")
t.eq(json.decode('{"k":1,"k":2}').k, 2, "duplicate keys: last wins")
t.eq(json.encode({ 1, 2, nil, 4 }), "[1,2,null,4]", "small holes become null")

-- Empty containers.
t.eq(json.encode({}), "{}")
t.eq(json.encode(json.object()), "{}")
t.eq(json.encode(json.array()), "[]")
t.eq(json.encode(json.array({})), "[]")
t.eq(json.encode(json.decode("[]")), "[]")
t.eq(json.encode(json.decode("{}")), "{}")
t.eq(json.encode(json.object(json.decode("[]"))), "{}", "json.object drops the array mark")
local marked = { 7 }
t.eq(json.array(marked), marked, "json.array returns its argument")
t.eq(json.encode(marked), "[7]")
t.raises("metatable", json.array, setmetatable({}, {}))
t.raises("table expected", json.array, 5)

-- Object keys come out sorted, so output is deterministic.
t.eq(json.encode({ b = 1, a = 2, c = 3, aa = 4, B = 5 }), '{"B":5,"a":2,"aa":4,"b":1,"c":3}')
local many = {}
for i = 1, 200 do many["k" .. i] = i end
local text = json.encode(many)
t.eq(json.encode(json.decode(text)), text)
t.ok(text:find('"k1":1,"k10":10,"k100":100,"k101":101', 1, true), "bytewise key order")

-- Large numbers and the 2^53 boundary.
t.eq(json.encode(2 ^ 53 - 1), "9007199254740991")
t.eq(json.encode(-(2 ^ 53 - 1)), "-9007199254740991")
t.eq(json.encode(2 ^ 53), "9007199254740992")
t.eq(json.encode(2 ^ 53 + 2), "9007199254740994")
t.eq(json.encode(1e20), "1e+20")
t.eq(json.encode(123456789012), "123456789012")
t.eq(json.decode("9007199254740993"), 2 ^ 53, "beyond 2^53 rounds to nearest")
t.eq(json.decode("9007199254740991"), 2 ^ 53 - 1)
t.eq(json.decode("123456789012345"), 123456789012345)
t.eq(json.decode("1234567890123456789012345678901234567890"), 1.2345678901234568e39)
t.eq(json.decode("1.7976931348623157e308"), 1.7976931348623157e308)
t.eq(json.decode("1e-400"), 0, "underflow reads as 0")
for _, v in ipairs({ 2 ^ 53, 2 ^ 63, 2 ^ 64, 1.7976931348623157e308, -1e-310, 0.1 + 0.2 }) do
  t.eq(json.decode(json.encode(v)), v, "exact round trip of " .. tostring(v))
end
t.eq(json.decode("0." .. string.rep("0", 5000) .. "1"), 0, "long numbers are read")
t.eq(json.decode(string.rep("9", 308)), 1e308, "308 nines round to 1e308")
t.fails("protocol", json.decode(string.rep("9", 309)))

-- Unencodable values fail with kind "protocol".
local function encode_fails(v, pattern, msg)
  local err = t.fails("protocol", json.encode(v))
  t.ok(err.message:find(pattern), (msg or "") .. " message " .. err.message .. " should match " .. pattern)
end
encode_fails(print, "function")
encode_fails(coroutine.create(print), "thread")
encode_fails(io.stdout, "userdata")
encode_fails(0 / 0, "NaN")
encode_fails(math.huge, "inf")
encode_fails(-math.huge, "inf")
encode_fails({ a = { b = print } }, "function", "nested")
local cyc = {} cyc.self = cyc
encode_fails(cyc, "itself")
local c1, c2 = {}, {} c1[1] = c2 c2[1] = c1
encode_fails(c1, "itself")
encode_fails({ 1, 2, x = 3 }, "mixing")
encode_fails({ [1] = 1, [50] = 2 }, "sparse array")
encode_fails({ [0] = "zero" }, "array index")
encode_fails({ [1.5] = "x" }, "array index")
encode_fails({ [-1] = "x" }, "array index")
encode_fails({ [true] = 1 }, "key of type boolean")
encode_fails({ [{}] = 1 }, "key of type table")
encode_fails(json.array({ a = 1 }), "marked as array")
local err = t.fails("protocol", json.encode({ 1, 2, 0 / 0 }))
t.eq(err.kind, "protocol")
t.eq(err.phase, "send")
t.eq(tostring(err), err.message)
t.ok(err.message:find("^json: "), "encode messages start with json:")
t.eq(json.encode({ [1] = 1, [3] = 3 }), "[1,null,3]", "holes within 2x count are null")
t.eq(json.encode({ [10] = 1 }), "[null,null,null,null,null,null,null,null,null,1]", "index 10 is not sparse")

-- Invalid UTF-8 in both directions.
for _, bad in ipairs({ "\255", "\192\128", "\224\128\128", "\237\160\128", "\244\144\128\128", "abc\128", "\226\130", "ok\195" }) do
  t.fails("protocol", json.decode('"' .. bad .. '"'))
  local e = t.fails("protocol", json.encode(bad))
  t.ok(e.message:find("invalid UTF%-8 in string at byte %d+"), e.message)
end
local e8 = t.fails("protocol", json.encode("abc\255"))
t.ok(e8.message:find("at byte 4", 1, true), "names the byte offset: " .. e8.message)
local ke, kerr = json.encode({ ["k\255"] = 1 })
t.fails("protocol", ke, kerr, "invalid UTF-8 in a key")
t.fails("protocol", json.decode("\255"))

-- Malformed input: every case fails with kind "protocol", never raises.
local malformed = {
  "", " ", "[", "]", "{", "}", "[1,]", "[1,2,,3]", "[,1]", '{"a":1,}', '{"a" 1}', '{"a":}',
  "{a:1}", "{'a':1}", "['x']", "[1 2]", '{"a":1 "b":2}', "01", "-01", "00", "1.", ".5", "+1",
  "-", "1e", "1e+", "1.e3", "0x10", "NaN", "-Infinity", "Infinity", "nul", "tru", "fals",
  "nulll", "True", "[1]x", "1 2", '"abc', '"\\"', '"\\x"', '"\\u12"', '"\\u12G4"', '"\\ud800"',
  '"\\udc00"', '"\\ud800\\u0041"', '"\\ud800x"', '"a\nb"', '"\t"', '"\0"', "/* c */ 1",
  "1 // c", "[1] // c", "\0", "1\0", "1e400", "-1e400", '{"a":1}}', "[[]", "[]]", '{"a"',
  '{"a":', '{"a":1', "[1", "[1,", "\"\\", "\"\\u", "\"\\ud83d\\u",
}
t.ok(#malformed >= 25, "enough malformed cases")
for _, text in ipairs(malformed) do
  local v, e = json.decode(text)
  t.fails("protocol", v, e, ("input %q"):format(text))
  t.eq(e.phase, "read")
  t.ok(e.message:find("^json: .+ at line %d+ column %d+ %(byte %d+%)$"), e.message)
end

-- Error positions and the err value's shape.
local _, pe = json.decode('{\n  "a": [1, 2,]\n}')
t.eq(pe.kind, "protocol")
t.eq(pe.retryable, false)
t.eq(pe.message, "json: trailing comma in array at line 2 column 14 (byte 16)")
t.eq(tostring(pe), pe.message)
t.eq(type(getmetatable(pe).__tostring), "function")
local _, ee = json.decode("[1, 2")
t.eq(ee.message, "json: unexpected end of input at line 1 column 6 (byte 6)")
local _, te = json.decode("{} x")
t.ok(te.message:find("after the value"), te.message)

-- Misuse raises.
t.raises("string expected", json.decode, 5)
t.raises("string expected", json.decode, nil)
t.raises("string expected", json.decode, {})
t.raises("indent", json.encode, {}, { indent = -1 })
t.raises("indent", json.encode, {}, { indent = 1.5 })
t.raises("indent", json.encode, {}, { indent = "2" })

-- Whitespace and the byte order mark.
t.eq(json.decode(" \t\r\n 5 \t\r\n "), 5)
t.eq(json.decode("\239\187\191[1]")[1], 1, "a leading BOM is skipped")
t.fails("protocol", json.decode("\f1"))
local nb, nberr = json.decode("\194\1601")
t.fails("protocol", nb, nberr, "no-break space is not JSON whitespace")

-- Depth limit: 1000 levels decode and encode, 1001 fail cleanly, deeper never crashes.
local ok1000 = json.decode(string.rep("[", 1000) .. string.rep("]", 1000))
t.ok(ok1000, "1000 levels decode")
t.eq(json.encode(ok1000), string.rep("[", 1000) .. string.rep("]", 1000))
local de = t.fails("protocol", json.decode(string.rep("[", 1001) .. string.rep("]", 1001)))
t.ok(de.message:find("nesting"), de.message)
t.fails("protocol", json.decode(string.rep('{"a":', 1001) .. "1" .. string.rep("}", 1001)))
t.ok(json.decode(string.rep('{"a":', 1000) .. "1" .. string.rep("}", 1000)), "1000 objects")
t.fails("protocol", json.decode(string.rep("[", 100000)))
t.fails("protocol", json.decode(string.rep("[", 1000000) .. string.rep("]", 1000000)))
local deep = {}
for _ = 1, 1001 do deep = { deep } end
local dee = t.fails("protocol", json.encode(deep))
t.ok(dee.message:find("nesting"), dee.message)

-- A 1 MB string, with and without escapes.
local big = string.rep("0123456789abcdef", 65536)
t.eq(#big, 1048576)
local bigtext = json.encode(big)
t.eq(#bigtext, #big + 2)
t.eq(json.decode(bigtext), big)
local bigesc = string.rep('a"\n\\é', 200000)
t.eq(json.decode(json.encode({ s = bigesc })).s, bigesc, "escaped megabyte string")
local bigarr = {}
for i = 1, 100000 do bigarr[i] = { id = i, name = "n" .. i } end
t.ok(same(json.decode(json.encode(bigarr)), bigarr), "100k element array")

-- indent option.
t.eq(json.encode({ a = { 1, 2 }, b = {}, c = json.array() }, { indent = 2 }),
  '{\n  "a": [\n    1,\n    2\n  ],\n  "b": {},\n  "c": []\n}')
t.eq(json.encode({ 1, { x = true } }, { indent = 4 }), '[\n    1,\n    {\n        "x": true\n    }\n]')
t.eq(json.encode({ a = 1 }, { indent = 0 }), '{"a":1}')
t.eq(json.encode({ a = 1 }, {}), '{"a":1}')
t.eq(json.encode("s", { indent = 2 }), '"s"')
local pretty = json.encode(doc, { indent = 3 })
t.ok(same(json.decode(pretty), doc), "pretty output decodes to the same value")

t.done()
