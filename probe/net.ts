/**
 * The first `probe` steps, below HTTP: the DNS lookup, the TCP connection
 * and the TLS handshake, each timed and explained in words on failure.
 */
import { DEFAULT_TIMEOUT_MS, type ProbeOptions, type Step, step, type Target } from "./core.ts";
import { duration, explainConnectError, explainDnsError, explainTlsError } from "./explain.ts";

/** The DNS lookup: the addresses found (none for IP literals and localhost). */
export interface DnsStep extends Step {
  name: "dns";
  addresses: string[];
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

/** Step 1: resolves the host with DNS; IP literals and `localhost` need no lookup. */
export async function lookupStep(target: Target, options: ProbeOptions = {}): Promise<DnsStep> {
  const host = target.hostname;
  if (isIpLiteral(host) || host === "localhost") {
    const summary = host === "localhost"
      ? "localhost is resolved by this machine: no DNS lookup"
      : `${host} is an IP address: no DNS lookup`;
    return step<DnsStep>({ name: "dns", result: "ok", summary, addresses: [] });
  }
  const started = performance.now();
  const signal = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const [a, aaaa] = await Promise.allSettled([
    Deno.resolveDns(host, "A", { signal }),
    Deno.resolveDns(host, "AAAA", { signal }),
  ]);
  const ms = performance.now() - started;
  const addresses = [a, aaaa].flatMap((r) => r.status === "fulfilled" ? r.value : []);
  if (addresses.length > 0) {
    return step<DnsStep>({
      name: "dns",
      result: "ok",
      summary: `${host} resolves to ${addresses.join(", ")}`,
      addresses,
      ms,
    });
  }
  const error = a.status === "rejected" ? a.reason : (aaaa as PromiseRejectedResult).reason;
  // Not fatal: the connection uses the system resolver, which also reads /etc/hosts.
  return step<DnsStep>({
    name: "dns",
    result: "warn",
    summary: `no DNS address for ${host}`,
    cause: explainDnsError(host, error),
    addresses,
    ms,
  });
}

/** Step 2: opens the TCP connection, timed. */
export async function connectStep(
  target: Target,
  options: ProbeOptions = {},
): Promise<{ step: Step; conn: Deno.Conn | null }> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const where = `${target.hostname}:${target.port}`;
  const started = performance.now();
  try {
    const conn = await Deno.connect({
      hostname: target.hostname,
      port: target.port,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const ms = performance.now() - started;
    const remote = conn.remoteAddr as Deno.NetAddr;
    return {
      step: step({
        name: "tcp",
        result: "ok",
        summary: `connected to ${where} (${remote.hostname}) in ${duration(ms)}`,
        ms,
      }),
      conn,
    };
  } catch (error) {
    return {
      step: step({
        name: "tcp",
        result: "fail",
        summary: `cannot connect to ${where}`,
        cause: explainConnectError(target.hostname, target.port, error, timeoutMs),
        ms: performance.now() - started,
      }),
      conn: null,
    };
  }
}

/** Step 3 (wss/https only): the TLS handshake over `conn`; the certificate is checked by name. */
export async function tlsStep(
  conn: Deno.Conn,
  target: Target,
  options: ProbeOptions = {},
): Promise<{ step: Step; conn: Deno.TlsConn | null }> {
  const started = performance.now();
  let tls: Deno.TlsConn | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    tls = await Deno.startTls(conn as Deno.TcpConn, {
      hostname: target.hostname,
      caCerts: options.caCerts,
    });
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no TLS answer within ${duration(timeoutMs)}`)),
        timeoutMs,
      );
    });
    const info = await Promise.race([tls.handshake(), timeout]);
    const ms = performance.now() - started;
    return {
      step: step({
        name: "tls",
        result: "ok",
        summary: `handshake with ${target.hostname} done in ${duration(ms)}, certificate valid${
          info.alpnProtocol ? `, ALPN ${info.alpnProtocol}` : ""
        }`,
        ms,
      }),
      conn: tls,
    };
  } catch (error) {
    try {
      (tls ?? conn).close();
    } catch {
      // Closed by the failed handshake already.
    }
    return {
      step: step({
        name: "tls",
        result: "fail",
        summary: `TLS handshake with ${target.hostname} failed`,
        cause: explainTlsError(target.hostname, error),
        ms: performance.now() - started,
      }),
      conn: null,
    };
  } finally {
    clearTimeout(timer);
  }
}
