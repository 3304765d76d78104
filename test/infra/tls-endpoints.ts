import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect, createServer as createTcpServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { createServer as createTlsServer } from "node:tls";
import { requireTool, runLogged } from "./kafka-s3-process.ts";

/** PEM text of a throwaway CA and of a server certificate for 127.0.0.1 it signed */
export interface TlsPems {
  ca: string;
  caFile: string;
  cert: string;
  key: string;
}

/** A CA and a 127.0.0.1 server certificate, made with openssl in `dir`. */
export async function makeServerCertificate(dir: string): Promise<TlsPems> {
  requireTool("openssl", ["version"], "install OpenSSL (Debian: apt-get install openssl)");
  mkdirSync(dir, { recursive: true });
  const at = (name: string) => join(dir, name);
  const openssl = (args: string[], what: string) =>
    runLogged("openssl", args, { cwd: dir, logFile: at("openssl.log"), timeoutMs: 60_000, what });
  await openssl(
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=questa-s3-test-ca"].concat([
      "-keyout",
      at("ca.key"),
      "-out",
      at("ca.pem"),
    ]),
    "openssl: test CA",
  );
  writeFileSync(at("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await openssl(
    ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", at("server.key")].concat([
      "-out",
      at("server.csr"),
    ]),
    "openssl: server key",
  );
  await openssl(
    [
      "x509",
      "-req",
      "-days",
      "2",
      "-in",
      at("server.csr"),
      "-CA",
      at("ca.pem"),
      "-CAkey",
      at("ca.key"),
    ].concat(["-CAcreateserial", "-out", at("server.pem"), "-extfile", at("server.ext")]),
    "openssl: server certificate",
  );
  return {
    ca: readFileSync(at("ca.pem"), "utf8"),
    caFile: at("ca.pem"),
    cert: readFileSync(at("server.pem"), "utf8"),
    key: readFileSync(at("server.key"), "utf8"),
  };
}

export interface Endpoint {
  url: string;
  /** connections accepted so far, and those still open */
  accepted(): number;
  open(): number;
  close(): Promise<void>;
}

function track(server: Server, url: string): Endpoint {
  const sockets = new Set<Socket>();
  let accepted = 0;
  server.on("connection", (socket: Socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  return {
    url,
    accepted: () => accepted,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function listen(server: Server): Promise<number> {
  return await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : 0);
    });
  });
}

/**
 * An endpoint that accepts connections and never answers, not even with a TLS handshake or an
 * HTTP status: what a hung or black-holed object store looks like to a client.
 */
export async function startSilentEndpoint(): Promise<Endpoint> {
  const server = createTcpServer(() => {});
  const port = await listen(server);
  return track(server, `http://127.0.0.1:${port}`);
}

/** https in front of a real server (e.g. MinIO): TLS ends here, the bytes go on to `target` unchanged. */
export async function startTlsProxy(target: string, pems: TlsPems): Promise<Endpoint> {
  const { hostname, port } = new URL(target);
  const server = createTlsServer({ cert: pems.cert, key: pems.key }, (client) => {
    const upstream = connect(Number(port), hostname);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
  });
  const listening = await listen(server);
  return track(server, `https://127.0.0.1:${listening}`);
}
