/** What the storage folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import { FlasherClient, StorageMuxClient, StorageMuxFlasherClient } from "./client.ts";
import { ImageStorage } from "./image.ts";
import { FLASHER_CLIENT, STORAGE_MUX_CLIENT, STORAGE_MUX_FLASHER_CLIENT } from "./interface.ts";
import { MockFlasher, MockStorageMux, MockStorageMuxFlasher } from "./mock.ts";

const UPSTREAM = "jumpstarter_driver_opendal.driver";

export default {
  drivers: [
    { name: "ImageStorage", types: ["ImageStorage"], driver: ImageStorage },
    { name: "MockStorageMux", types: ["MockStorageMux", `${UPSTREAM}.MockStorageMux`], driver: MockStorageMux },
    { name: "MockStorageMuxFlasher", types: ["MockStorageMuxFlasher", `${UPSTREAM}.MockStorageMuxFlasher`], driver: MockStorageMuxFlasher },
    { name: "MockFlasher", types: ["MockFlasher", `${UPSTREAM}.MockFlasher`], driver: MockFlasher },
  ],
  clients: [
    { labels: [STORAGE_MUX_CLIENT], client: StorageMuxClient },
    { labels: [STORAGE_MUX_FLASHER_CLIENT], client: StorageMuxFlasherClient },
    { labels: [FLASHER_CLIENT], client: FlasherClient },
  ],
} satisfies DriverFolder;
