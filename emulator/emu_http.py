"""A small asyncio HTTP/1.1 server: keep-alive, Content-Length and chunked request bodies,
Expect: 100-continue, and the delivery modes the fault injector needs (drop the connection,
hang, trickle the body)."""

import asyncio
from urllib.parse import parse_qs

MAX_HEAD_BYTES = 64 * 1024

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}

# Response delivery modes.
NORMAL, DROP, DROP_PARTIAL, HANG = "normal", "drop", "drop_partial", "hang"


class BadRequest(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Request:
    __slots__ = ("method", "target", "path", "query_string", "version", "headers", "body",
                 "peer", "keep_alive")

    def __init__(self, method, target, version, headers, peer):
        self.method = method
        self.target = target
        path, _, self.query_string = target.partition("?")
        self.path = path
        self.version = version
        self.headers = headers      # lower-cased names
        self.body = b""
        self.peer = peer
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            self.keep_alive = "close" not in connection
        else:
            self.keep_alive = "keep-alive" in connection

    def query(self):
        """Query parameters, last value wins."""
        return {key: values[-1] for key, values in
                parse_qs(self.query_string, keep_blank_values=True).items()}


class Response:
    __slots__ = ("status", "body", "content_type", "headers", "mode", "trickle_bytes",
                 "trickle_interval", "close")

    def __init__(self, status, body=b"", content_type="application/json", headers=None,
                 mode=NORMAL):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode("utf-8")
        self.content_type = content_type
        self.headers = headers      # list of (name, value) or None
        self.mode = mode
        self.trickle_bytes = 0      # > 0: send the body in pieces of this size
        self.trickle_interval = 0.0
        self.close = False

    def head(self, keep_alive, content_length=None):
        length = len(self.body) if content_length is None else content_length
        lines = ["HTTP/1.1 %d %s" % (self.status, REASONS.get(self.status, "Status")),
                 "Content-Length: %d" % length]
        if self.content_type:
            lines.append("Content-Type: " + self.content_type)
        if self.headers:
            lines.extend("%s: %s" % pair for pair in self.headers)
        if not keep_alive:
            lines.append("Connection: close")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")


async def _read_chunked(reader, max_body):
    parts = []
    total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest(400, "bad chunk size") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":    # trailers
                pass
            return b"".join(parts)
        total += size
        if total > max_body:
            raise BadRequest(413, "request body too large")
        chunk = await reader.readexactly(size + 2)
        parts.append(chunk[:-2])


async def read_request(reader, writer, max_body):
    """Read one request; None at a clean end of stream between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest(400, "incomplete request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "request head too large") from None
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        raise BadRequest(400, "bad request line") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(400, "unsupported HTTP version")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(400, "bad header line")
        headers[name.strip().lower()] = value.strip()
    request = Request(method, target, version, headers, writer.get_extra_info("peername"))
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length = headers.get("content-length")
    if chunked or (length and length != "0"):
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if chunked:
            request.body = await _read_chunked(reader, max_body)
        else:
            try:
                size = int(length)
            except ValueError:
                raise BadRequest(400, "bad Content-Length") from None
            if size < 0:
                raise BadRequest(400, "bad Content-Length")
            if size > max_body:
                raise BadRequest(413, "request body too large")
            request.body = await reader.readexactly(size)
    return request


class HttpServer:
    """Serves `handler(request) -> Response` (a coroutine function) on keep-alive connections."""

    def __init__(self, handler, max_body=256 * 1024 * 1024):
        self.handler = handler
        self.max_body = max_body
        self.writers = set()
        self.server = None

    async def start(self, host, port, ssl_context=None):
        self.server = await asyncio.start_server(
            self._serve, host, port, ssl=ssl_context, limit=MAX_HEAD_BYTES, backlog=512)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self):
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        for _ in range(3):                  # let the connection tasks see the close
            await asyncio.sleep(0)
        if self.server is not None:
            await self.server.wait_closed()

    async def _serve(self, reader, writer):
        self.writers.add(writer)
        try:
            while True:
                try:
                    request = await read_request(reader, writer, self.max_body)
                except BadRequest as exc:
                    response = Response(exc.status, str(exc) + "\n", "text/plain; charset=utf-8")
                    writer.write(response.head(False) + response.body)
                    await writer.drain()
                    break
                if request is None:
                    break
                response = await self.handler(request)
                keep_alive = request.keep_alive and not response.close
                mode = response.mode
                if mode == NORMAL:
                    if response.trickle_bytes:
                        await self._trickle(writer, response, keep_alive)
                    else:
                        writer.write(response.head(keep_alive) + response.body)
                        await writer.drain()
                elif mode == DROP:
                    writer.transport.abort()
                    return
                elif mode == DROP_PARTIAL:
                    # Promise a body, send part of it, then close.
                    declared = max(len(response.body) * 2, 64)
                    writer.write(response.head(True, declared) + response.body)
                    await writer.drain()
                    break
                elif mode == HANG:
                    while await reader.read(65536):     # until the client gives up
                        pass
                    break
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                OSError):
            pass
        except asyncio.CancelledError:     # shutdown: end quietly
            writer.transport.abort()
        finally:
            self.writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    @staticmethod
    async def _trickle(writer, response, keep_alive):
        writer.write(response.head(keep_alive))
        await writer.drain()
        body = response.body
        step = response.trickle_bytes
        for start in range(0, len(body), step):
            await asyncio.sleep(response.trickle_interval)
            writer.write(body[start:start + step])
            await writer.drain()
