// The floor bench:rpc compares each service with: a bare node:http2 server
// answering each RPC's path with fixed gRPC response bytes (the message the
// real service answered, length-prefixed) and grpc-status 0, after reading
// the request. No router, no decoding, no handler.
//   node --import tsx bench/raw-grpc-server.ts RESPONSES_JSON  → prints its port
// RESPONSES_JSON maps a path ("/scoreboard.v1.ScoreService/AddScore") to the
// base64 of the frame to answer.
import http2 from "node:http2";
import { readFileSync } from "node:fs";

const responses = new Map(
  Object.entries(JSON.parse(readFileSync(process.argv[2]!, "utf8")) as Record<string, string>).map(([path, b64]) => [path, Buffer.from(b64, "base64")]),
);

const server = http2.createServer();
server.on("stream", (stream, headers) => {
  const frame = responses.get(headers[":path"] ?? "");
  stream.on("data", () => {});
  stream.on("end", () => {
    if (!frame) {
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12", "grpc-message": "unknown path" }, { endStream: true });
      return;
    }
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(frame);
  });
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  console.log(typeof address === "object" && address ? address.port : "");
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
