import type { VNode } from "preact";
import { renderToString } from "preact-render-to-string";

/** Renders a page to a full HTML document. */
export function renderPage(page: VNode): string {
  return "<!doctype html>" + renderToString(page);
}
