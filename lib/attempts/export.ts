import { z } from "zod";
import { type Issue, issueList } from "../http/errors.ts";
import { type AttemptPage, AttemptQuery, listAttempts } from "./query.ts";
import type { Attempt } from "../../shared/protocol.ts";
import {
  EXPORT_FORMATS,
  EXPORT_MAX_ROWS,
  type ExportFormat,
} from "../../shared/attempt_filters.ts";

/** Records read per page while exporting: the API's largest page. */
const PAGE = 500;

/** The CSV columns, in order: every field of an attempt. */
const COLUMNS = [
  "id",
  "at",
  "outcome",
  "reason",
  "user",
  "ip",
  "transport",
  "origin",
  "userAgent",
  "tokenId",
  "durationMs",
] as const satisfies readonly (keyof Attempt)[];

/**
 * Reads the query of `GET /api/v1/attempts/export`: `format` and the filters
 * of `/api/v1/attempts`. `limit` and `cursor` are refused: an export is the
 * whole filter, not a page.
 */
export function parseExportQuery(
  params: Record<string, string>,
):
  | { ok: true; format: ExportFormat; query: AttemptQuery }
  | { ok: false; issues: Issue[] } {
  const { format, ...filters } = params;
  const issues: Issue[] = [];
  const parsedFormat = z.enum(EXPORT_FORMATS).safeParse(format);
  if (!parsedFormat.success) issues.push({ path: "format", message: "must be csv or json" });
  for (const name of ["limit", "cursor"]) {
    if (name in filters) {
      issues.push({ path: name, message: "is not an export filter: an export holds every match" });
      delete filters[name];
    }
  }
  const query = AttemptQuery.safeParse({ ...filters, limit: String(PAGE) });
  if (!query.success) issues.push(...issueList(query.error.issues));
  if (!parsedFormat.success || !query.success || issues.length > 0) return { ok: false, issues };
  return { ok: true, format: parsedFormat.data, query: query.data };
}

/**
 * A spreadsheet reads a cell that starts with `=`, `+`, `-`, `@` (or a tab or
 * carriage return) as a formula: such a cell gets a leading `'` so an
 * attacker's user agent or origin stays text. Then the cell is quoted when
 * it holds a comma, a quote or a line break.
 */
export function csvCell(value: string | number | null): string {
  if (value === null) return "";
  let text = String(value);
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function csvRow(attempt: Attempt): string {
  return COLUMNS.map((c) => csvCell(c === "at" ? new Date(attempt.at).toISOString() : attempt[c]))
    .join(",") + "\r\n";
}

/**
 * Every attempt matching `query`, newest first and at most
 * {@linkcode EXPORT_MAX_ROWS}, as a stream of CSV (a header row, then one
 * row per attempt, `at` in ISO 8601 UTC) or of one JSON array. The log is
 * read a page at a time as the client takes the bytes. The first page is
 * read before the stream is handed back, so a store that is down fails the
 * request (503) rather than cutting a download that already said 200.
 */
export async function exportAttempts(
  kv: Deno.Kv,
  query: AttemptQuery,
  format: ExportFormat,
): Promise<ReadableStream<Uint8Array>> {
  const encoder = new TextEncoder();
  const read = (cursor: string | undefined, sent: number) =>
    listAttempts(kv, { ...query, limit: Math.min(PAGE, EXPORT_MAX_ROWS - sent), cursor });
  let page: AttemptPage | null = await read(query.cursor, 0);
  let sent = 0;
  let started = false;
  return new ReadableStream({
    async pull(controller) {
      if (!started) {
        started = true;
        controller.enqueue(encoder.encode(format === "csv" ? COLUMNS.join(",") + "\r\n" : "["));
      }
      if (page === null) {
        if (format === "json") controller.enqueue(encoder.encode(sent === 0 ? "]\n" : "\n]\n"));
        controller.close();
        return;
      }
      let chunk = "";
      for (const attempt of page.items) {
        chunk += format === "csv"
          ? csvRow(attempt)
          : `${sent === 0 ? "\n" : ",\n"}${JSON.stringify(attempt)}`;
        sent++;
      }
      if (chunk) controller.enqueue(encoder.encode(chunk));
      page = page.cursor === null || sent >= EXPORT_MAX_ROWS ? null : await read(page.cursor, sent);
    },
  });
}
