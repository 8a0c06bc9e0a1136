/** What the storage folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";
import { ImageStorage } from "./image.ts";
import { MockFlasher, MockStorageMux, MockStorageMuxFlasher } from "./mock.ts";

const UPSTREAM = "jumpstarter_driver_opendal.driver";

export default {
  drivers: [
    { name: "ImageStorage", types: ["ImageStorage"], driver: ImageStorage },
    { name: "MockStorageMux", types: ["MockStorageMux", `${UPSTREAM}.MockStorageMux`], driver: MockStorageMux },
    { name: "MockStorageMuxFlasher", types: ["MockStorageMuxFlasher", `${UPSTREAM}.MockStorageMuxFlasher`], driver: MockStorageMuxFlasher },
    { name: "MockFlasher", types: ["MockFlasher", `${UPSTREAM}.MockFlasher`], driver: MockFlasher },
  ],
  clients,
} satisfies DriverFolder;
