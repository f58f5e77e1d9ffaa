import type { Assets } from "../../shared/assets.ts";

export type { Assets };

/** The manifest `scripts/build.ts` writes beside the assets. */
export const MANIFEST_URL = new URL("../../static/build/manifest.json", import.meta.url);

/** Reads the asset manifest; without one, pages are served without islands. */
export async function loadAssets(): Promise<Assets> {
  try {
    const manifest = JSON.parse(await Deno.readTextFile(MANIFEST_URL));
    return { js: `/static/build/${manifest.js}`, css: `/static/build/${manifest.css}` };
  } catch {
    return { js: null, css: "/static/app.css" };
  }
}
