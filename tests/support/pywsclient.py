"""A WebSocket client on Python's websockets (Debian's python3-websockets),
for serve_ws_test.lua: connects to argv[1] offering the "chat" subprotocol
and permessage-deflate, echoes a text, a 1 MiB text and a binary message
through the server, closes with 1000 and prints one line:
  OK <subprotocol> <extensions> <close code>
Run with /usr/bin/python3: the Debian package is installed for it, not for
a pyenv interpreter that may come first on PATH."""
import asyncio
import sys

import websockets


async def main(url):
    async with websockets.connect(url, subprotocols=["chat"], max_size=4 << 20) as w:
        await w.send("py")
        assert await w.recv() == "py", "text echo"
        big = "".join(chr(65 + i % 26) for i in range(1 << 20))
        await w.send(big)
        assert await w.recv() == big, "1 MiB echo"
        await w.send(bytes(range(256)))
        assert await w.recv() == bytes(range(256)), "binary echo"
        ext = w.response_headers.get("Sec-WebSocket-Extensions", "-")
        await w.close(1000, "bye")
        print("OK", w.subprotocol, ext.replace(" ", ""), w.close_code)


asyncio.run(main(sys.argv[1]))
