/**
 * Reads a push body with a hard size limit, gunzipping `Content-Encoding:
 * gzip` as a stream: the limit applies to the decompressed bytes and
 * reading stops as soon as it is passed, so a gzip bomb costs at most the
 * limit in memory.
 */

/** Why a body could not be read. */
export class BodyError extends Error {
  readonly status: 400 | 413 | 415;
  constructor(status: 400 | 413 | 415, message: string) {
    super(message);
    this.name = "BodyError";
    this.status = status;
  }
}

/** The body as text, at most `maxBytes` once decompressed. */
export async function readBody(req: Request, maxBytes: number): Promise<string> {
  const encoding = (req.headers.get("content-encoding") ?? "identity").trim().toLowerCase();
  if (encoding !== "gzip" && encoding !== "identity" && encoding !== "") {
    throw new BodyError(
      415,
      `Cannot read the body as Content-Encoding must be gzip or identity: current value is ${
        JSON.stringify(encoding.slice(0, 40))
      }`,
    );
  }
  const length = Number(req.headers.get("content-length") ?? NaN);
  if (encoding !== "gzip" && length > maxBytes) throw tooLarge(maxBytes);
  if (!req.body) return "";
  const stream = encoding === "gzip"
    ? req.body.pipeThrough(new DecompressionStream("gzip"))
    : req.body;
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) throw tooLarge(maxBytes);
      chunks.push(value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    if (error instanceof BodyError) throw error;
    throw new BodyError(
      400,
      `Cannot read the body as it is not valid ${encoding === "gzip" ? "gzip" : "data"}: ${
        (error as Error)?.message ?? error
      }`,
    );
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    bytes.set(c, offset);
    offset += c.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new BodyError(400, "Cannot read the body as it is not valid UTF-8");
  }
}

function tooLarge(maxBytes: number): BodyError {
  return new BodyError(
    413,
    `Cannot read the body as it is over ${maxBytes} bytes (after decompression)`,
  );
}
