import { createMemoryPair } from "../src/transport/memory.js";
import { describeTransportConformance } from "./conformance/transport-conformance.js";

describeTransportConformance("memory", async (options) => {
  const [client, server] = createMemoryPair(options);
  return {
    client,
    server,
    cleanup: async () => {
      client.close();
      server.close();
    },
  };
});
