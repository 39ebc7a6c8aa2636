/**
 * The subjects servers of one cluster use. Each server subscribes ONCE, to its own
 * `<prefix>.node.<serverId>.>`; nothing is broadcast per call. A restarted server has a new
 * id, so messages meant for its previous life reach nobody rather than the wrong process.
 */
export class ClusterSubjects {
  constructor(
    /** `muster.<cluster name>`. */
    readonly prefix: string,
    /** This server's id in the registry. */
    readonly selfId: string,
  ) {}

  /**
   * The subject of message `kind` for server `serverId`. Streams: `stream` carries what the
   * reading server sends the one holding the agent (open, credit, cancel), `items` the way back.
   */
  node(
    serverId: string,
    kind: "part" | "cancel" | "outcomes" | "stream" | "items" | "handoff" | "ping",
  ): string {
    return `${this.prefix}.node.${serverId}.${kind}`;
  }

  /** Everything addressed to this server. */
  get inbox(): string {
    return `${this.prefix}.node.${this.selfId}.>`;
  }
}

/** Cluster names become one subject token and part of bucket names: letters, digits, - and _. */
export function checkClusterName(name: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name))
    throw new Error(`cluster name ${JSON.stringify(name)}: use 1 to 64 letters, digits, - or _`);
  return name;
}
