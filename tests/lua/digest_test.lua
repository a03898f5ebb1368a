-- lurk.sha256, lurk.hmac_sha256 (RFC 4231's HMAC-SHA-256 test cases, FIPS 180-2's SHA-256
-- examples, and openssl on a random input) and lurk.equal.
package.path = arg[0]:match("^(.*)/[^/]*$") .. "/lib/?.lua;" .. package.path
local t = require "t"

local function unhex(h) return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end

-- RFC 4231 section 4: test cases 1-4, 6 and 7 (5 is a truncated output).
local rfc4231 = {
  { ("\11"):rep(20), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
  { "Jefe", "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
  { ("\170"):rep(20), ("\221"):rep(50), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
  { unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), ("\205"):rep(50),
    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
  { ("\170"):rep(131), "Test Using Larger Than Block-Size Key - Hash Key First",
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
  { ("\170"):rep(131), "This is a test using a larger than block-size key and a larger than block-size data. "
    .. "The key needs to be hashed before being used by the HMAC algorithm.",
    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
}
for i, c in ipairs(rfc4231) do
  t.eq(lurk.hmac_sha256(c[1], c[2]), c[3], "RFC 4231 case " .. (i < 5 and i or i + 1))
  t.eq(lurk.hmac_sha256(c[1], c[2], true), unhex(c[3]), "raw bytes")
end

t.eq(lurk.sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
t.eq(lurk.sha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
t.eq(lurk.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
t.eq(#lurk.sha256("x", true), 32)

-- openssl agrees on a random megabyte with an embedded NUL in the key.
local dir = t.tmpdir()
local f = assert(io.open(dir .. "/data", "wb"))
local parts = {}
math.randomseed(7)
for i = 1, 65536 do parts[i] = string.char(math.random(0, 255)):rep(16) end
local data = table.concat(parts)
f:write(data)
f:close()
local p = io.popen("openssl dgst -sha256 -mac HMAC -macopt hexkey:6b00657921 " .. dir .. "/data")
local want = p:read("*a"):match("(%x+)%s*$")
p:close()
t.eq(lurk.hmac_sha256("k\0ey!", data), want, "openssl dgst -mac HMAC")
p = io.popen("sha256sum " .. dir .. "/data")
t.eq(lurk.sha256(data), p:read("*a"):match("^(%x+)"), "sha256sum")
p:close()

t.eq(lurk.equal("sha256=ab", "sha256=ab"), true)
t.eq(lurk.equal("sha256=ab", "sha256=ac"), false)
t.eq(lurk.equal("sha256=ab", "sha256=a"), false)
t.eq(lurk.equal("", ""), true)
t.raises("lurk.hmac_sha256: bad argument #2", lurk.hmac_sha256, "k")
t.raises("lurk.sha256: bad argument #1", lurk.sha256, {})
t.done()
