import { MemoryNetwork } from "../src/transport/memory.js";
import type { Transport } from "../src/transport/types.js";
import { describeTransportConformance, until } from "./conformance/transport-conformance.js";

// Through a MemoryNetwork (as memory:// listeners are), which makes its pairs with
// createMemoryPair: the dialer's options apply to both ends, the listener's traffic to its own.
describeTransportConformance("memory", async (options = {}) => {
  const { serverTraffic, clientTraffic, ...common } = options;
  const net = new MemoryNetwork();
  const accepted: Transport[] = [];
  const listener = net.listen("conformance", (t) => accepted.push(t), { traffic: serverTraffic });
  const client = await net.dial("conformance", { ...common, traffic: clientTraffic });
  await until("the accepted end", () => accepted.length === 1);
  const server = accepted[0]!;
  return {
    client,
    server,
    cleanup: async () => {
      client.close();
      server.close();
      await listener.close();
    },
  };
});
