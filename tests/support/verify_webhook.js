// SPDX-License-Identifier: Apache-2.0
// Verifies one webhook delivery with the reference Standard Webhooks library
// (npm standardwebhooks, installed by scripts/deps into tools/node_modules):
//   node verify_webhook.js SECRET DIR
// DIR holds the delivery as the receiver got it: body, webhook-id,
// webhook-timestamp, webhook-signature (one file each). Exit 0 when the
// library accepts it with SECRET, 1 when it refuses it, 77 when the library
// is not installed.
"use strict";
const fs = require("fs");
const path = require("path");
let Webhook;
try {
  ({ Webhook } = require(path.join(__dirname, "..", "..", "tools", "node_modules", "standardwebhooks")));
} catch (e) {
  console.error("standardwebhooks is not installed (scripts/deps installs it)");
  process.exit(77);
}
const [secret, dir] = process.argv.slice(2);
const read = (n) => fs.readFileSync(path.join(dir, n), "utf8");
const headers = {
  "webhook-id": read("webhook-id"),
  "webhook-timestamp": read("webhook-timestamp"),
  "webhook-signature": read("webhook-signature"),
};
try {
  new Webhook(secret).verify(read("body"), headers);
  console.log("standardwebhooks: verified");
  process.exit(0);
} catch (e) {
  console.error("standardwebhooks: refused: " + e.message);
  process.exit(1);
}
