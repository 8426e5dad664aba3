// SPDX-License-Identifier: Apache-2.0
// Validates recorded REST traffic against docs/openapi.yaml with Prism's own
// validator (npm @stoplight/prism-http, the library behind `prism proxy`,
// installed by scripts/deps into tools/node_modules):
//   node openapi_traffic.js SOURCE_DIR TRAFFIC.jsonl
// Each line is one exchange as tests/support/harness.c records it. Every
// answer must match an operation of the document (a 404/405 for a path or
// method it lacks is the router's answer and counts as such) and that
// operation's response for its status: body schema, media type, headers.
// Prints each violation and "N exchanges, M violations"; exit 1 when M > 0,
// 77 when Prism is not installed.
"use strict";
const fs = require("fs");
const path = require("path");
const [src, traffic] = process.argv.slice(2);
const nm = path.join(src, "tools", "node_modules", "@stoplight", "prism-http");
let prism, route, validateOutput;
try {
  prism = require(nm);
  route = require(path.join(nm, "dist", "router")).default;
  ({ validateOutput } = require(path.join(nm, "dist", "validator")));
} catch (e) {
  console.error("openapi_traffic: @stoplight/prism-http is not installed (scripts/deps installs it): skipped");
  process.exit(77);
}

(async () => {
  const ops = await prism.getHttpOperationsFromSpec(path.join(src, "docs", "openapi.yaml"));
  const lines = fs.readFileSync(traffic, "utf8").split("\n").filter((l) => l.length > 0);
  let violations = 0;
  const seen = new Set();
  const report = (x, what) => {
    violations++;
    const key = `${x.method} ${x.url.split("?")[0]} ${x.status}: ${what}`;
    if (seen.size < 30 && !seen.has(key)) {
      seen.add(key);
      console.log(`VIOLATION ${key.slice(0, 600)}\n    body: ${x.body.slice(0, 300)}`);
    }
  };
  for (const line of lines) {
    const x = JSON.parse(line);
    const [p, q] = x.url.split("?");
    const query = {};
    for (const [k, v] of new URLSearchParams(q || "")) query[k] = v;
    const input = { method: x.method.toLowerCase(), url: { path: p, query }, headers: {} };
    const r = route({ resources: ops, input });
    if (r._tag === "Left") {
      // A path or method the document lacks: only the router's 404/405 may answer it.
      if (x.status !== 404 && x.status !== 405) report(x, `no operation: ${r.left.message}`);
      continue;
    }
    let body = x.body;
    const ct = x.headers["content-type"] || "";
    if (ct.startsWith("application/json") && body.length > 0) {
      try {
        body = JSON.parse(body);
      } catch (e) {
        report(x, "the body is not JSON");
        continue;
      }
    }
    const v = validateOutput({ resource: r.right, element: { statusCode: x.status, headers: x.headers, body } });
    if (v._tag === "Left") {
      const errs = v.left.filter((d) => d.severity === 0);
      if (errs.length > 0)
        report(x, errs.slice(0, 3).map((d) => `${(d.path || []).join(".")} ${d.message}`).join("; ") +
          (errs.length > 3 ? ` (and ${errs.length - 3} more)` : ""));
    }
  }
  console.log(`openapi_traffic: ${lines.length} exchanges, ${violations} violations`);
  process.exit(violations > 0 ? 1 : 0);
})().catch((e) => {
  console.error("openapi_traffic: " + (e.stack || e));
  process.exit(2);
});
