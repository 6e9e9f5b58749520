// A Node.js host for precheck.wasm on the official OPA WebAssembly SDK, @open-policy-agent/opa-wasm.
//
//   node host.js precheck.wasm data.json input.json
//   node host.js bundle.tar.gz input.json
//
// prints the decision (the value of the entrypoint precheck/decision, as the module returns it) for the
// input document and exits as precheck check does: 0 allowed, 1 denied, 2 bad usage, 3 failure. The
// module and data come from `precheck build`: precheck.wasm and the policy's data, or the bundle
// (--bundle), whose /policy.wasm and /data.json are the same two files. The contract a host keeps is in
// ../../README.md, "The WebAssembly module".
"use strict";

const fs = require("node:fs");
const zlib = require("node:zlib");
const { loadPolicy } = require("@open-policy-agent/opa-wasm");
const { builtins } = require("./builtins");

const ENTRYPOINT = "precheck/decision";

// A Precheck is one loaded module. evaluate is synchronous and not reentrant; load one per worker.
class Precheck {
  constructor(policy, clock) {
    this.policy = policy;
    this.clock = clock;
  }

  // decide evaluates one input document (a JSON text, a Buffer or ArrayBuffer of one, or a value) and
  // returns the decision as the module states it. It throws when the entrypoint is undefined, which the
  // policy never is: a host must treat that as a refusal, never as "allowed".
  decide(input, now = this.clock()) {
    this.now = BigInt(now);
    const rs = this.policy.evaluate(asJSON(input), ENTRYPOINT);
    if (!Array.isArray(rs) || rs.length === 0 || !("result" in rs[0])) {
      throw new Error(`${ENTRYPOINT} is undefined`);
    }
    return rs[0].result;
  }
}

// asJSON hands the SDK an ArrayBuffer holding exactly the given JSON text: it then parses the bytes in the
// module itself, so large numbers are not rounded by a JavaScript round trip.
function asJSON(v) {
  if (v instanceof ArrayBuffer) return v;
  if (typeof v === "string") v = Buffer.from(v);
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
    return v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength);
  }
  return new TextEncoder().encode(JSON.stringify(v)).buffer;
}

// load instantiates precheck.wasm (bytes) and, unless data is undefined, sets the policy's data
// document (data.json as bytes, text or a value). clock gives the evaluation's time in nanoseconds.
async function load(wasm, data, { clock = () => BigInt(Date.now()) * 1000000n } = {}) {
  let host;
  const policy = await loadPolicy(wasm, undefined, builtins(() => host.now));
  host = new Precheck(policy, clock);
  if (data !== undefined) policy.setData(asJSON(data));
  return host;
}

// readBundle returns the files of an OPA bundle (.tar.gz) by name ("/policy.wasm", "/data.json").
// A bundle is a plain ustar archive of regular files, so a few lines read it.
function readBundle(gz) {
  const tar = zlib.gunzipSync(gz);
  const files = {};
  for (let at = 0; at + 512 <= tar.length;) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const field = (from, len) => header.subarray(from, from + len).toString("utf8").replace(/\0.*$/s, "");
    const prefix = field(345, 155);
    const name = (prefix ? prefix + "/" : "") + field(0, 100);
    const size = parseInt(field(124, 12).trim() || "0", 8);
    const type = field(156, 1);
    if (type === "0" || type === "") files["/" + name.replace(/^\/+/, "")] = tar.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

async function main(args) {
  let wasm, data, input;
  if (args.length === 2 && /\.(tar\.gz|tgz)$/.test(args[0])) {
    const files = readBundle(fs.readFileSync(args[0]));
    for (const f of ["/policy.wasm", "/data.json"]) {
      if (!files[f]) throw new Error(`${args[0]}: the bundle has no ${f}`);
    }
    [wasm, data, input] = [files["/policy.wasm"], files["/data.json"], fs.readFileSync(args[1])];
  } else if (args.length === 3) {
    [wasm, data, input] = args.map((f) => fs.readFileSync(f));
  } else {
    console.error("usage: node host.js precheck.wasm data.json input.json\n       node host.js bundle.tar.gz input.json");
    return 2;
  }
  const host = await load(wasm, data);
  const decision = host.decide(input);
  console.log(JSON.stringify(decision, null, 2));
  return decision.allowed === true ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
    console.error("node-host:", err && err.message ? err.message : err);
    process.exit(3);
  });
}

module.exports = { ENTRYPOINT, load, readBundle };
