// Drives the sidecar with Node.js's own HTTP stacks: the built-in fetch (undici) over TCP, or
// http.request over a unix socket. Steps come from tests/clients/steps.py, one per stdin line:
//   name \t method \t target \t base64("Header: value\n"...) \t base64(body)
// and each answer goes to stdout as: name \t status \t content-encoding \t base64(body).
// "{id:NAME}" in a target or body is replaced by the first "id" in step NAME's answer.
//
// usage: node http_steps.mjs --url http://127.0.0.1:PORT   (fetch)
//        node http_steps.mjs --socket /path/to/key.sock     (http.request, socketPath)
import http from "node:http";
import zlib from "node:zlib";
import { readFileSync } from "node:fs";

const [mode, where] = process.argv.slice(2);
if (!["--url", "--socket"].includes(mode) || !where) {
  console.error("usage: node http_steps.mjs --url BASE | --socket PATH");
  process.exit(2);
}

const b64 = (s) => Buffer.from(s, "base64");
const ids = new Map();
const withIds = (text) =>
  text.replace(/\{id:([^}]+)\}/g, (_, name) => {
    if (!ids.has(name)) throw new Error(`no id from step ${name}`);
    return ids.get(name);
  });

function parseHeaders(block) {
  const headers = {};
  for (const line of block.split("\n")) {
    const at = line.indexOf(":");
    if (at > 0) headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return headers;
}

async function viaFetch(method, target, headers, body) {
  const resp = await fetch(where + target, {
    method,
    headers,
    body: body.length ? body : undefined,
    redirect: "manual",
  });
  // fetch decodes gzip itself; the header still says what crossed the wire.
  const data = Buffer.from(await resp.arrayBuffer());
  return [resp.status, resp.headers.get("content-encoding") || "", data];
}

function viaSocket(method, target, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: where, path: target, method, headers }, (resp) => {
      const chunks = [];
      resp.on("data", (c) => chunks.push(c));
      resp.on("end", () => {
        const encoding = resp.headers["content-encoding"] || "";
        let data = Buffer.concat(chunks);
        if (encoding === "gzip") data = zlib.gunzipSync(data);
        resolve([resp.statusCode, encoding, data]);
      });
      resp.on("error", reject);
    });
    req.setTimeout(30000, () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    if (body.length) req.write(body); // no Content-Length given: sent chunked
    req.end();
  });
}

const send = mode === "--url" ? viaFetch : viaSocket;
const lines = readFileSync(0, "utf8").split("\n").filter((l) => l.trim());
for (const line of lines) {
  const [name, method, target, headerBlock, bodyB64] = line.split("\t");
  const headers = parseHeaders(b64(headerBlock).toString("utf8"));
  const rawBody = b64(bodyB64 || "");
  // Only a plain-text body may carry an {id:...} placeholder; compressed bytes pass untouched.
  const body = headers["Content-Encoding"] ? rawBody : Buffer.from(withIds(rawBody.toString("utf8")));
  const [status, encoding, data] = await send(method, withIds(target), headers, body);
  const found = /"id"\s*:\s*"?([^",}\s]+)/.exec(data.toString("utf8"));
  if (found) ids.set(name, found[1]);
  process.stdout.write([name, status, encoding, data.toString("base64")].join("\t") + "\n");
}
