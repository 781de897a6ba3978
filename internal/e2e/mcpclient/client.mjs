// An agent's view of runhost's MCP server through the official TypeScript
// SDK: connect over Streamable HTTP with a Bearer key, list the tools, run
// code, get a refusal as a tool error, write a PNG into a workspace and read
// it back as an image. Prints one JSON line for the Go test to check
// (internal/e2e/mcpclient_test.go).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL(process.env.RUNHOST_MCP_URL);
const headers = {};
if (process.env.RUNHOST_API_KEY) headers.Authorization = `Bearer ${process.env.RUNHOST_API_KEY}`;

const client = new Client({ name: "runhost-e2e-typescript", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }));

const out = { server: client.getServerVersion(), instructions: client.getInstructions() };
out.tools = (await client.listTools()).tools;
out.run = await client.callTool({
  name: "run_code",
  arguments: { runtime: "python", code: "import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))", stdin: "40 2" },
});
out.failing = await client.callTool({ name: "run_code", arguments: { runtime: "shell", code: "echo oops >&2; exit 7" } });
out.refused = await client.callTool({ name: "run_code", arguments: { runtime: "cobol", code: "DISPLAY 'HI'" } });
out.write = await client.callTool({
  name: "write_file",
  arguments: { workspace: "ts", path: "dot.png", content: process.env.PNG_BASE64, encoding: "base64" },
});
out.image = await client.callTool({ name: "read_file", arguments: { workspace: "ts", path: "dot.png" } });
await client.close();
console.log(JSON.stringify(out));
