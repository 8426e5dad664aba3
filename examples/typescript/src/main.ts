// SPDX-License-Identifier: Apache-2.0
// A typed atshub client built from docs/openapi.yaml: openapi-typescript
// generates src/schema.d.ts from the document, openapi-fetch turns it into a
// client whose paths, parameters, bodies and answers are all typed.
//
// The program adds a webhook endpoint (a receiver it runs itself), lists the
// jobs page by page, moves an application to a stage with an
// Idempotency-Key (and sends it again to see the stored answer replayed),
// verifies a webhook delivery with the reference Standard Webhooks library
// and deletes the endpoint. Configuration, from the environment:
//   ATSHUB_URL         http://127.0.0.1:8080
//   ATSHUB_KEY         the tenant's API key
//   ATSHUB_STAGE_ID    the provider's stage to move the first application to
//   ATSHUB_RECEIVER    host the webhook receiver listens on (default 127.0.0.1)
import createClient from "openapi-fetch";
import { Webhook } from "standardwebhooks";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { components, paths } from "./schema.js";

type Record = components["schemas"]["Record"];
type Delivery = { headers: IncomingHttpHeaders; body: string };

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === "") throw new Error(`${name} is not set`);
  return v;
}

const client = createClient<paths>({
  baseUrl: env("ATSHUB_URL"),
  headers: { Authorization: `Bearer ${env("ATSHUB_KEY")}` },
});

/** A receiver for webhook deliveries: resolves with the first one. */
async function receiver(host: string): Promise<{ url: string; first: Promise<Delivery>; close: () => void }> {
  let deliver: (d: Delivery) => void = () => {};
  const first = new Promise<Delivery>((resolve) => (deliver = resolve));
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      res.writeHead(204).end();
      deliver({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  // The daemon keeps its connection to the receiver alive: close those too.
  const close = () => {
    server.closeAllConnections();
    server.close();
  };
  return { url: `http://${host}:${port}/hook`, first, close };
}

function header(h: IncomingHttpHeaders, name: string): string {
  const v = h[name];
  return Array.isArray(v) ? v.join(", ") : (v ?? "");
}

async function allJobs(): Promise<Record[]> {
  const jobs: Record[] = [];
  let cursor: string | undefined;
  for (;;) {
    const { data, error } = await client.GET("/v1/jobs", { params: { query: { limit: 2, cursor } } });
    if (error) throw new Error(`listJobs: ${error.error.code}: ${error.error.message}`);
    jobs.push(...data.data);
    if (data.next_cursor === null || data.next_cursor === undefined) return jobs;
    cursor = data.next_cursor;
  }
}

async function firstApplication(): Promise<Record[]> {
  const { data, error } = await client.GET("/v1/applications", { params: { query: { limit: 1 } } });
  if (error) throw new Error(`listApplications: ${error.error.code}: ${error.error.message}`);
  return data.data;
}

/** Polls list() until it returns something (30 s at most). */
async function until(what: string, list: () => Promise<Record[]>): Promise<Record[]> {
  for (let i = 0; i < 120; i++) {
    const found = await list();
    if (found.length > 0) return found;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no ${what} within 30 s`);
}

async function main(): Promise<void> {
  const hook = await receiver(process.env.ATSHUB_RECEIVER ?? "127.0.0.1");
  const created = await client.POST("/v1/webhooks", {
    body: { url: hook.url, description: "typescript example" },
  });
  if (created.error) throw new Error(`createWebhook: ${created.error.error.code}: ${created.error.error.message}`);
  const endpoint = created.data.data;
  console.log(`webhook ready: endpoint ${endpoint.id}`);

  // A sync brings jobs in, then applications: wait for both, then page
  // through the jobs.
  const jobs = await until("jobs", allJobs);
  console.log(`jobs: ${jobs.length}, page by page (limit 2): ${jobs.map((j) => j.remote_id).join(" ")}`);
  const [app] = await until("applications", firstApplication);
  const key = randomUUID();
  const move = () =>
    client.POST("/v1/applications/{id}/stage", {
      params: { path: { id: app.id }, header: { "Idempotency-Key": key } },
      body: { stage_id: env("ATSHUB_STAGE_ID") },
    });
  const first = await move();
  if (first.error) throw new Error(`moveApplicationStage: ${first.error.error.code}: ${first.error.error.message}`);
  const again = await move();
  if (again.error) throw new Error(`moveApplicationStage again: ${again.error.error.code}`);
  const replayed = again.response.headers.get("Idempotent-Replayed");
  console.log(`moved ${app.id} to stage ${env("ATSHUB_STAGE_ID")}; the same key again: Idempotent-Replayed ${replayed}`);
  if (replayed !== "true") throw new Error("the second move was not a replay");

  let timer: NodeJS.Timeout | undefined;
  const delivery = await Promise.race([
    hook.first,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no webhook delivery within 60 s")), 60000);
    }),
  ]).finally(() => clearTimeout(timer));
  new Webhook(endpoint.secret).verify(delivery.body, {
    "webhook-id": header(delivery.headers, "webhook-id"),
    "webhook-timestamp": header(delivery.headers, "webhook-timestamp"),
    "webhook-signature": header(delivery.headers, "webhook-signature"),
  });
  console.log(`webhook delivery ${header(delivery.headers, "webhook-id")} verified with standardwebhooks`);

  const gone = await client.DELETE("/v1/webhooks/{id}", { params: { path: { id: endpoint.id } } });
  if (gone.error) throw new Error(`deleteWebhook: ${gone.error.error.code}`);
  hook.close();
  console.log("typescript example: ok");
}

main().catch((e: Error) => {
  console.error(`typescript example: ${e.message}`);
  process.exit(1);
});
