// Package wire holds the facts of Porthole's tunnel protocol that the
// client (package tunnel), the gateway and the launcher all need, and nothing
// else: names, close codes, the end-of-stream signal, the JSON error body,
// the WebSocket stream adapter and the byte pump. It imports no other
// Porthole package.
//
// # Stream protocol
//
// A tunnel is one WebSocket connection at /ws-proxy/{context}. The client
// asks for the subprotocol [Subprotocol]; the gateway agrees to it.
//
//   - Stream bytes travel as binary messages, in order, in both directions.
//     A binary message may have any length from 1 byte to [MaxMessageSize].
//   - WebSocket has no half-close, so Porthole defines one: a text message
//     whose payload is exactly [EOFMessage] ("eof") means "the sender has
//     finished writing" (a TCP FIN on its side). After it the sender sends no
//     more binary messages, but it keeps reading: the other direction flows
//     on until that side sends its own "eof".
//   - When both directions have ended, each side sends a close frame with
//     code 1000 and waits briefly for the peer's, so no data is cut short by
//     a reset.
//   - A stream that ends for any other reason is closed with a close frame
//     whose code and reason say why (see the Close* constants), so the other
//     side can tell the user instead of seeing a silently closed socket.
//   - Either side sends pings every [PingPeriod]; a side that receives
//     nothing (data, pong or ping) for [PongWait] treats the peer as dead.
//
// A peer that does not ask for the subprotocol (a plain WebSocket client)
// gets the same byte stream without half-close: its close frame ends both
// directions.
package wire
