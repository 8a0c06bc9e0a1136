/**
 * What a test started, undone after it: `cleanUpAfterEach()` registers an afterEach
 * that runs, newest first, every undo the test handed to the function it returns.
 *
 * @example
 * const cleanUp = cleanUpAfterEach();
 * test("…", async () => {
 *   const served = await serve(driver);
 *   cleanUp(() => served.close());
 * });
 */
import { afterEach } from "bun:test";

export function cleanUpAfterEach(): (undo: () => unknown) => void {
  const undos: (() => unknown)[] = [];
  afterEach(async () => {
    for (const undo of undos.splice(0).reverse()) await undo();
  });
  return (undo) => {
    undos.push(undo);
  };
}
