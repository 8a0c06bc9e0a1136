/**
 * The error a promise ends with, for tests; it fails the test if the promise resolves.
 * Awaited rather than `expect(p).rejects`, which can hang on a gRPC call.
 *
 * @example
 * const e = await failure(client.on());
 * expect(e).toBeInstanceOf(UnavailableError);
 */
export async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a failure, and it succeeded");
}
