import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Handler } from "../rpc/types.js";
import { MESSAGE_LIMITS, type Message } from "../text/message.js";
import type { TextContext, TextService } from "../text/service.js";

/** What the server sends in a `muster.text` call: one text line for this agent's text service. */
export interface TextCallRequest {
  line: string;
}

/** The lines the agent's text service sent back while handling it, in order. */
export interface TextCallResult {
  replies: string[];
}

/**
 * The `muster.text` method: the server delivers a text message addressed to this agent (or
 * to every agent) over the agent's muster session; the replies travel back as the result.
 */
export function textCallHandler(service: TextService): Handler<TextCallRequest, TextCallResult> {
  return async (request, call) => {
    const line = (request as Partial<TextCallRequest> | null)?.line;
    if (typeof line !== "string")
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, "muster.text needs {line: string}");
    if (Buffer.byteLength(line) > MESSAGE_LIMITS.maxLineBytes)
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `muster.text: line longer than ${MESSAGE_LIMITS.maxLineBytes} bytes`,
      );
    const replies: string[] = [];
    let open = true;
    const ctx: TextContext = {
      transport: "muster",
      // The text client behind a routed line (ORIGIN), else whoever called muster.text.
      peer: call.caller.name,
      send(message: Message) {
        // A reply sent after the handler returned has no way back.
        if (open) replies.push(message.toString());
      },
      close() {},
    };
    await service.receiveLine(line, ctx);
    open = false;
    return { replies };
  };
}
