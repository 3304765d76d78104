import { MemoryObjectStore } from "./memory-object-store.ts";
import { describeObjectStoreContract } from "./object-store.contract.ts";

describeObjectStoreContract("MemoryObjectStore", async () => ({ store: new MemoryObjectStore() }), {
  outsideBytes: false,
});
