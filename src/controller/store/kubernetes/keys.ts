/**
 * The keys every replica must share, in one Secret: the token signing key, the router
 * key, the CA (certificate and key) and the admin's identity. The first replica to
 * start with no Secret creates it from its data dir (made by initDataDir, so a
 * single-machine controller's keys carry over); when two race, the create that loses
 * gets 409 AlreadyExists and takes the winner's. Each replica then writes the Secret's
 * keys into its own data dir, where initDataDir finds them and issues this replica's
 * server certificate from the shared CA.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../../../common/yaml-file.ts";
import { DATA_FILES } from "../../data-dir.ts";
import { isKubeError, type KubeApi } from "./api.ts";

export const KEYS_SECRET = "jumpstarter-controller-keys";

/** Secret data key → file in the data dir. */
const FILES: Record<string, string> = {
  "signing-key.pem": DATA_FILES.signingKey,
  "router-key": DATA_FILES.routerKey,
  "ca.pem": DATA_FILES.ca,
  "ca-key.pem": DATA_FILES.caKey,
  "admin.id": "admin.id",
};

/**
 * Makes the data dir hold the Secret's keys, creating the Secret from the data dir's
 * keys when there is none. `makeLocal` fills the data dir (initDataDir, and the admin id)
 * and runs before a create. Returns whether this replica created the Secret.
 */
export async function syncKeysSecret(api: KubeApi, dataDir: string, makeLocal: () => Promise<void>): Promise<boolean> {
  let data = await read(api);
  let created = false;
  if (!data) {
    await makeLocal();
    const local: Record<string, string> = {};
    for (const [key, file] of Object.entries(FILES)) {
      const path = join(dataDir, file);
      if (!existsSync(path)) throw new Error(`${path} is missing: cannot create the Secret ${KEYS_SECRET} from it`);
      local[key] = Buffer.from(readFileSync(path)).toString("base64");
    }
    try {
      await api.createSecret({
        apiVersion: "v1",
        kind: "Secret",
        type: "Opaque",
        metadata: { name: KEYS_SECRET, labels: { "app.kubernetes.io/part-of": "jumpstarter" } },
        data: local,
      });
      data = local;
      created = true;
    } catch (e) {
      // Another replica created it first: every replica uses the winner's.
      if (!isKubeError(e, 409)) throw e;
      data = await read(api);
      if (!data) throw new Error(`the Secret ${KEYS_SECRET} exists (409) but cannot be read`);
    }
  }
  for (const [key, file] of Object.entries(FILES)) {
    const value = data[key];
    if (value === undefined) throw new Error(`the Secret ${api.namespace}/${KEYS_SECRET} has no '${key}': restore it, or delete the Secret to make new keys (every token and config handed out then stops working)`);
    const text = Buffer.from(value, "base64").toString("utf8");
    const path = join(dataDir, file);
    if (!existsSync(path) || readFileSync(path, "utf8") !== text) writeFileAtomic(path, text, 0o600);
  }
  return created;
}

async function read(api: KubeApi): Promise<Record<string, string> | undefined> {
  try {
    return (await api.getSecret(KEYS_SECRET)).data ?? {};
  } catch (e) {
    if (isKubeError(e, 404)) return undefined;
    throw e;
  }
}
