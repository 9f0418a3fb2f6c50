"""English explanation texts: templates with named fields, filled with live values.

Keys and fields are shared with `catalog_zh`; `tcpwatch.tcp.explain` documents every field.
"""

from __future__ import annotations

TEXT: dict[str, str] = {
    # Units and small words.
    "unit.s": "{s} s",
    "unit.min": "{m} min {s} s",
    "unit.h": "{h} h {m} min",
    "unit.d": "{d} d {h} h",
    "age.at_least": "at least {age}",
    "unknown_process": "an unknown process (run as root to see every owner)",
    "no_process": "no process (the application has already closed it)",
    "awaiting_accept_process": "no process yet (it waits in the accept queue for accept())",
    "listening_process": "the listening application",
    "process": "{name} (pid {pid})",
    "former_process": "no process now, formerly {name} (pid {pid})",
    # How it got here: one phrase per edge, built from the ladder rows.
    "path.sent": "sent {flags}",
    "path.recv": "received {flags}",
    "path.timer": "{timer} timer ran out",
    "path.enter": "→ {state}",
    "path.inferred": " (inferred)",
    "path.join": " · ",
    "path.sep": "; ",
    "path.first_seen": "tcpwatch first saw it in {state}.",
    "path.inferred_note": (
        "Steps marked (inferred) were not seen by a poll; TCP must have passed through "
        "them between two polls."
    ),
    # States: title, meaning (one sentence), what happens next.
    "state.LISTEN.title": "LISTEN — waiting for connections on {local}",
    "state.LISTEN.meaning": (
        "A server socket: the application called listen() and the kernel answers every "
        "incoming [S] on {local} by itself."
    ),
    "state.LISTEN.next": (
        "It stays until the application closes it. Each arriving [S] gets a [S.] and waits "
        "in SYN_RECV for the client's [.] (tcp_max_syn_backlog = {max_syn_backlog}, "
        "tcp_syncookies = {syncookies}); completed connections wait in the accept queue "
        "(now {recv_q} of backlog {send_q}, somaxconn = {somaxconn}) until accept() takes them."
    ),
    "state.SYN_SENT.title": "SYN_SENT — connecting to {remote}",
    "state.SYN_SENT.meaning": (
        "This end called connect() and sent [S]; it waits for the peer's [S.] "
        "(the first step of the three-way handshake)."
    ),
    "state.SYN_SENT.next": (
        "A [S.] from the peer makes this end answer [.] and become ESTABLISHED; a [R.] "
        "means nothing listens there and connect() fails with 'connection refused'. With "
        "no answer the [S] is resent after 1, 2, 4… s, tcp_syn_retries = {syn_retries} "
        "times, and connect() gives up after about {syn_give_up} (resent so far: {retrans})."
    ),
    "state.SYN_RECV.title": "SYN_RECV — handshake half done with {remote}",
    "state.SYN_RECV.meaning": (
        "A client's [S] reached a listener here, which answered [S.]; the kernel waits for "
        "the client's [.] to complete the handshake."
    ),
    "state.SYN_RECV.next": (
        "When the client's [.] arrives the connection becomes ESTABLISHED and joins the "
        "listener's accept queue. Without it the [S.] is resent tcp_synack_retries = "
        "{synack_retries} times (about {synack_give_up}), then the attempt is dropped "
        "(resent so far: {retrans})."
    ),
    "state.ESTABLISHED.title": "ESTABLISHED — open between {local} and {remote}",
    "state.ESTABLISHED.meaning": (
        "The handshake is complete ([S], [S.], [.]) and both ends can send data ([P.]) "
        "and acknowledge it ([.])."
    ),
    "state.ESTABLISHED.next": (
        "It stays open until one end calls close() or shutdown() — a [F.] then starts the "
        "close — or a [R] aborts it. An idle connection sends nothing unless keepalive is "
        "on: then a probe goes out after {ka_time} s of silence, then every {ka_intvl} s, "
        "and after {ka_probes} unanswered probes the kernel resets it ({ka_give_up} in all)."
    ),
    "state.ESTABLISHED.next_unaccepted": (
        "It waits in the listener's accept queue until the application calls accept(); "
        "from then on it is an ordinary open connection of that process. If the "
        "application closes the listener first, the kernel resets it ([R]) and the client "
        "reads 'connection reset by peer'."
    ),
    "state.ESTABLISHED.next_keepalive": (
        "Keepalive is on: the next probe is due in {timer_left} (probes sent without an "
        "answer: {retrans}). After {ka_probes} unanswered probes, {ka_intvl} s apart, the "
        "kernel declares the peer dead and resets the connection."
    ),
    "state.ESTABLISHED.next_retransmit": (
        "Sent data is waiting for its acknowledgement: retransmission number {retrans} is "
        "due in {timer_left}. The wait doubles each time; after tcp_retries2 = {retries2} "
        "retransmissions (about 15 minutes at the default) the kernel gives up and "
        "drops the connection."
    ),
    "state.ESTABLISHED.next_persist": (
        "The peer's receive window is zero (its application is not reading): a window "
        "probe is due in {timer_left}. Sending resumes when the peer reads and opens its "
        "window."
    ),
    "state.FIN_WAIT1.title": "FIN_WAIT1 — this end closed, waiting for the [.]",
    "state.FIN_WAIT1.meaning": (
        "This end called close() or shutdown() and sent [F.]; it waits for the peer to "
        "acknowledge it."
    ),
    "state.FIN_WAIT1.next": (
        "The peer's [.] moves it to FIN_WAIT2; if the peer's own [F.] comes with that "
        "acknowledgement it goes on to TIME_WAIT, and if the peer's [F.] comes first, to "
        "CLOSING. An unacknowledged FIN is resent like data (resent so far: {retrans})."
    ),
    "state.FIN_WAIT1.next_orphan": (
        "No process holds it any more: the kernel resends the [F.] at most "
        "tcp_orphan_retries = {orphan_retries} times (0 means 8) and then drops the "
        "connection (resent so far: {retrans})."
    ),
    "state.FIN_WAIT2.title": "FIN_WAIT2 — this end closed, waiting for the peer's [F.]",
    "state.FIN_WAIT2.meaning": (
        "The peer acknowledged this end's [F.]; this direction is finished, and the socket "
        "waits for the peer to close its side."
    ),
    "state.FIN_WAIT2.next": (
        "When the peer's [F.] arrives this end answers [.] and enters TIME_WAIT. Until "
        "then the peer may still send data, which is received. While the application "
        "still holds the socket (it used shutdown(SHUT_WR)) this can last for ever."
    ),
    "state.FIN_WAIT2.next_orphan": (
        "No process holds it any more, so the kernel waits at most tcp_fin_timeout = "
        "{fin_timeout} s for the peer's [F.], then drops it without sending anything."
    ),
    "state.CLOSING.title": "CLOSING — both ends closed at once",
    "state.CLOSING.meaning": (
        "This end sent [F.] and received the peer's [F.] before its own was acknowledged: "
        "the two FINs crossed (a simultaneous close)."
    ),
    "state.CLOSING.next": (
        "When the peer acknowledges this end's [F.] it enters TIME_WAIT for {tw_len} s."
    ),
    "state.TIME_WAIT.title": "TIME_WAIT — closed; waiting out 2MSL",
    "state.TIME_WAIT.meaning": (
        "The connection is over and this end closed first; the kernel keeps a small "
        "record of it so that a lost last [.] can be sent again and old segments die out."
    ),
    "state.TIME_WAIT.next": (
        "It disappears {timer_left} from now: Linux keeps TIME_WAIT for 2MSL = {tw_len} s "
        "(fixed, not a setting). If the peer resends its [F.] meanwhile, this end answers "
        "[.] again. With tcp_tw_reuse = {tw_reuse} (1 on, 2 loopback only) a new outgoing "
        "connection may take over this 4-tuple early."
    ),
    "state.TIME_WAIT.next_notimer": (
        "It disappears at most {tw_len} s after it began: Linux keeps TIME_WAIT for "
        "2MSL = {tw_len} s (fixed, not a setting). With tcp_tw_reuse = {tw_reuse} a new "
        "outgoing connection may take over this 4-tuple early."
    ),
    "state.CLOSE_WAIT.title": "CLOSE_WAIT — the peer closed; waiting for close() here",
    "state.CLOSE_WAIT.meaning": (
        "The peer sent [F.] (it will send no more) and this end acknowledged it; the "
        "application here has not closed its socket yet."
    ),
    "state.CLOSE_WAIT.next": (
        "Nothing happens until {process} calls close() (or shutdown()): then [F.] goes "
        "out and the socket enters LAST_ACK. The kernel never times this state out: a "
        "program that forgets to close keeps the socket, its descriptor and memory for ever."
    ),
    "state.CLOSE_WAIT.next_unaccepted": (
        "It waits in the listener's accept queue until the application calls accept(); "
        "the application then reads what the client sent, then end-of-file (the client's "
        "[F.]), and closing it sends [F.] and moves it to LAST_ACK. If the application "
        "closes the listener first, the kernel resets it ([R])."
    ),
    "state.LAST_ACK.title": "LAST_ACK — closed after the peer; waiting for the last [.]",
    "state.LAST_ACK.meaning": (
        "The peer closed first and this end has now sent its own [F.]; it waits for the "
        "peer's acknowledgement."
    ),
    "state.LAST_ACK.next": (
        "The peer's [.] ends the connection at once (CLOSED; the peer keeps TIME_WAIT). "
        "If it never comes the [F.] is resent (so far: {retrans}) until the kernel gives up."
    ),
    "state.CLOSE.title": "CLOSE — a socket without a connection",
    "state.CLOSE.meaning": (
        "The kernel's own closed state: the socket object still exists (a program holds it, "
        "or it is about to be freed) but carries no connection."
    ),
    "state.CLOSE.next": (
        "Nothing more happens on the network; close() in the application releases it."
    ),
    "state.CLOSED.title": "CLOSED — gone",
    "state.CLOSED.meaning": "The connection no longer exists in the kernel.",
    "state.CLOSED.next": (
        "Nothing: tcpwatch keeps it on screen for a short while so you can see how it ended."
    ),
    # Who closed first.
    "who.local": "This end ({process}) closed first: it sent the first [F.].",
    "who.peer": "The peer ({remote}) closed first: its [F.] arrived before this end closed.",
    "who.both": "Both ends closed at the same moment: the two [F.] crossed (via CLOSING).",
    "who.reset": "Neither end closed in order: the connection was reset ([R]).",
    # Tags: what each means.
    "tag.listener": "listener: a socket waiting for incoming connections.",
    "tag.half_open": (
        "half_open: only one end believes the connection is (being) set up — a handshake "
        "in progress, or a peer that no longer answers."
    ),
    "tag.half_closed": (
        "half_closed: one direction is finished ([F.] sent) while the other may still carry data."
    ),
    "tag.lingering": (
        "lingering: the connection is over or closing but the socket stays (TIME_WAIT, or "
        "a closing state older than {lingering} s)."
    ),
    "tag.orphan": (
        "orphan: no process holds this closing socket any more; the kernel finishes the "
        "close alone."
    ),
    "tag.unaccepted": (
        "unaccepted: the kernel completed the handshake by itself and the connection waits "
        "in its listener's accept queue; no process holds it until the application calls "
        "accept(). In CLOSE_WAIT its client has already closed it while it waited."
    ),
    # tcpdump's flags, as the ladder and "how it got here" show them.
    "flag.S": "[S] SYN: asks to open a connection and carries this end's initial sequence number",
    "flag.S.": "[S.] SYN+ACK: accepts the SYN (acknowledges it) and sends the answering SYN",
    "flag..": "[.] ACK: acknowledges data or a SYN/FIN, carrying nothing else",
    "flag.P.": "[P.] PSH+ACK: data, to be handed to the application right away",
    "flag.F.": "[F.] FIN+ACK: this sender has no more data (and acknowledges what it got)",
    "flag.R": "[R] RST: abort the connection now",
    "flag.R.": "[R.] RST+ACK: abort; sent in answer to a segment, e.g. a SYN to a closed port",
    # Glossary: the ideas behind the states.
    "term.handshake": (
        "Three-way handshake: [S], [S.], [.]. Each end sends its initial sequence number "
        "and needs it acknowledged; the middle segment does both for the server, so three "
        "segments suffice and two would leave the server unsure the client heard it."
    ),
    "term.close": (
        "Four-way close: each direction is closed on its own by a FIN and its ACK. The "
        "receiver of the first FIN may still have data to send, so its ACK and its own FIN "
        "usually go separately — unless it closes at once and they travel together."
    ),
    "term.isn": (
        "ISN (initial sequence number): the random starting number of a direction's byte "
        "count; random so that old or forged segments do not fit a new connection."
    ),
    "term.seq_ack": (
        "Sequence and acknowledgement numbers: seq numbers the bytes sent; ack is the next "
        "byte expected, so it confirms everything before it. SYN and FIN each use one number."
    ),
    "term.mss": (
        "MSS (maximum segment size): the largest payload one segment may carry, announced "
        "by each end in its SYN."
    ),
    "term.window": (
        "Window: how many more bytes the receiver can buffer; the sender must not exceed it "
        "(flow control). A zero window stops the sender until the reader catches up."
    ),
    "term.msl": (
        "MSL (maximum segment lifetime): how long a segment may survive in the network. "
        "TIME_WAIT lasts 2MSL so that a lost last ACK can be repeated and stray segments "
        "of the old connection expire before the same 4-tuple is used again; Linux fixes it "
        "at 60 s."
    ),
    "term.rto": (
        "Retransmission timeout: when no acknowledgement comes in time the segment is sent "
        "again, and the wait doubles each time (exponential backoff). It starts from the "
        "measured round-trip time; for a SYN it starts at 1 s."
    ),
    "term.close_vs_shutdown": (
        "close() vs shutdown(): close() gives up the descriptor, and the connection is "
        "closed only when the last descriptor referring to it is closed; shutdown(SHUT_WR) "
        "sends the FIN at once, whoever else holds it, and keeps reading possible."
    ),
    "term.connection": (
        "A TCP connection is state kept at both ends (sequence numbers, windows, timers) "
        "and identified by the 4-tuple: local address and port, remote address and port."
    ),
    "note.flags": "Flags in this path: {flags}.",
    "note.tcp_info": (
        "Kernel measurements: round-trip time {rtt_ms} ms, retransmission timeout "
        "{rto_ms} ms, MSS {mss} bytes, congestion window {cwnd} segments, "
        "{total_retrans} retransmissions in all."
    ),
    # Notes.
    "note.queues.LISTEN": (
        "Recv-Q {recv_q} = connections that finished the handshake and wait for accept(); "
        "Send-Q {send_q} = the backlog, the most that may wait."
    ),
    "note.queues.CLOSE_WAIT": (
        "Recv-Q {recv_q}: bytes the application has not read; the peer's FIN counts as one, "
        "which is why a CLOSE_WAIT usually shows Recv-Q 1. Send-Q {send_q}: bytes sent but "
        "not yet acknowledged."
    ),
    "note.queues.default": (
        "Recv-Q {recv_q}: bytes received but not yet read by the application; Send-Q "
        "{send_q}: bytes sent but not yet acknowledged by the peer."
    ),
    "note.queues.none": "Recv-Q and Send-Q carry no meaning in this state.",
    "note.listener.wildcard": (
        "Bound to {address}: accepts clients arriving on any address of this host (in this "
        "network namespace)."
    ),
    "note.listener.loopback": (
        "Bound to {address} only: clients on this host that connect to {address} are "
        "accepted, but a client reaching any other address of the host gets [R.] — "
        "'connection refused' — because nothing listens there. Bind to 0.0.0.0 or :: to "
        "accept on all addresses."
    ),
    "note.listener.specific": (
        "Bound to {address} only: clients reaching this host through another address get "
        "[R.] ('connection refused')."
    ),
    "note.listener.queue": (
        "Accept queue {recv_q} of {send_q}: the backlog the application passed to listen(), "
        "capped by somaxconn = {somaxconn}."
    ),
    "note.listener.children": (
        "On this port now: {syn_recv} handshake(s) in progress (SYN_RECV), {accepted} "
        "established connection(s) the application has accepted, and {unaccepted} "
        "waiting in the accept queue for accept()."
    ),
    "note.listener.unlisted": (
        "The accept queue holds {recv_q}, {count} more than listed here. Most likely "
        "these were reset ([R]) by their clients while they waited: the kernel no longer "
        "lists them but keeps them queued until accept() takes them, and their first read "
        "then fails with 'connection reset by peer'. A connection accepted or arriving "
        "while the poll ran also makes the two differ, for a moment."
    ),
    "note.keepalive": (
        "Keepalive: after {ka_time} s without traffic a probe ([.] with an old sequence "
        "number) asks the peer to answer; probes repeat every {ka_intvl} s and after "
        "{ka_probes} unanswered the connection is reset. These are the host defaults "
        "(tcp_keepalive_*); a program may set its own per socket."
    ),
    "note.reset": (
        "A reset ([R]) aborts a connection at once: no FIN exchange, no TIME_WAIT, unread "
        "data is thrown away. It answers a segment for a port where nothing listens "
        "(connection refused), or comes from close() with unread data or SO_LINGER 0, or "
        "from a peer that no longer knows the connection."
    ),
    "note.refused": (
        "[R.] in answer to [S] means nothing listens on {remote}: 'connection refused'. A "
        "common cause is a server bound to 127.0.0.1 while the client uses another address."
    ),
    "note.half_close": (
        "Half-close: the end that sent [F.] (close() or shutdown(SHUT_WR)) sends no more "
        "data but can still receive; the other end can keep sending until it closes too."
    ),
    "note.fin_ack": (
        "Closes show as [F.] in tcpdump, not [F]: the FIN also carries an acknowledgement, "
        "as every segment after the handshake does."
    ),
    "note.peer": "The other end is on this host too: {peer_state}, held by {peer_process}.",
    # Diagnoses.
    "diag.closed_in_accept_queue.title": (
        "{count} connection(s) closed by their clients in the accept queue of {listener}"
    ),
    "diag.closed_in_accept_queue.cause": (
        "Their clients sent [F.] (they closed, or finished sending with shutdown()) while "
        "the connections still waited for {process} to call accept(); the oldest [F.] "
        "arrived {age} ago. The application accepts too slowly or has stopped accepting: "
        "these clients have given up, or still wait for an answer nobody has begun. This "
        "is not a CLOSE_WAIT leak: no process holds them yet."
    ),
    "diag.closed_in_accept_queue.fix": (
        "Find what holds up the accept loop: a blocked or busy thread, a full worker "
        "pool, slow work done before accept(). Once accepted, such a connection reads what "
        "the client sent, then end-of-file. A larger backlog only lets more clients wait."
    ),
    "diag.close_wait_leak.title": "{count} CLOSE_WAIT leaked by {process}",
    "diag.close_wait_leak.cause": (
        "{count} connection(s) in CLOSE_WAIT, the oldest for {age}: the peer closed "
        "them, but {process} never called close(). The kernel waits for the application "
        "for ever, so each leaked socket holds a file descriptor and memory; this is a "
        "bug in the program (a missing close(), a stuck thread, an exhausted pool)."
    ),
    "diag.close_wait_leak.fix": (
        "Make the program close sockets when a read returns 0 (end of stream), in every "
        "error path too; look at its threads or connection pool. Restarting it frees them."
    ),
    "diag.time_wait_buildup.title": "{count} TIME_WAIT toward {destination}",
    "diag.time_wait_buildup.cause": (
        "This host opens and closes many short connections to {destination} and closes "
        "them first, so each one waits {tw_len} s in TIME_WAIT; each holds a local port "
        "of the {ports} in ip_local_port_range {port_first}–{port_last}."
    ),
    "diag.time_wait_buildup.fix": (
        "Reuse connections (HTTP keep-alive, connection pools) or let the server close "
        "first. tcp_tw_reuse = {tw_reuse} (1 lets new outgoing connections reuse "
        "TIME_WAIT ports safely); widening ip_local_port_range gives more room."
    ),
    "diag.ephemeral_port_pressure.title": (
        "Local ports toward {destination} {percent}% used ({count} of {ports})"
    ),
    "diag.ephemeral_port_pressure.cause": (
        "Every connection to one destination address and port needs its own local port "
        "from ip_local_port_range {port_first}–{port_last}; {count} are taken (TIME_WAIT "
        "included). When none is left, connect() fails with 'Cannot assign requested "
        "address' (EADDRNOTAVAIL)."
    ),
    "diag.ephemeral_port_pressure.fix": (
        "Reuse connections instead of opening one per request, widen ip_local_port_range, "
        "spread over more destination addresses or ports, and enable tcp_tw_reuse "
        "(now {tw_reuse})."
    ),
    "diag.syn_recv_buildup.title": "{count} half-open handshakes on {listener}",
    "diag.syn_recv_buildup.cause": (
        "Many [S] arrived but their final [.] did not: a SYN flood (spoofed sources that "
        "never answer the [S.]), or the clients' ACKs are lost on the way back. Each waits "
        "about {synack_give_up} ({synack_retries} SYN-ACK retries)."
    ),
    "diag.syn_recv_buildup.fix": (
        "Keep tcp_syncookies on (now {syncookies}) so a full SYN queue does not lock out "
        "real clients; lower tcp_synack_retries to drop dead attempts sooner; check the "
        "path back to the clients and filter the flood upstream."
    ),
    "diag.accept_queue_overflow.title": "Accept queue of {listener} {percent}% full",
    "diag.accept_queue_overflow.cause": (
        "{recv_q} finished connections wait for accept() and the backlog is {send_q}: "
        "{process} accepts too slowly. When the queue is full the kernel drops new "
        "handshakes (clients see delays and retries), or resets them with "
        "tcp_abort_on_overflow = 1 (now {abort_on_overflow})."
    ),
    "diag.accept_queue_overflow.fix": (
        "Make the accept loop faster (more workers, no blocking work before accept()). A "
        "bigger backlog in listen() only helps up to somaxconn = {somaxconn}."
    ),
    "diag.loopback_only_listener.title": "{listener} accepts local clients only",
    "diag.loopback_only_listener.cause": (
        "It is bound to the loopback address {address}, so a client that reaches this "
        "host by any other address is answered with [R.]: 'connection refused'."
    ),
    "diag.loopback_only_listener.fix": (
        "If other hosts (or containers) must connect, bind to 0.0.0.0 or :: (or the "
        "address they use); if it is meant to be local only, this is fine."
    ),
    "diag.syn_sent_stuck.title": "connect() to {remote} gets no answer",
    "diag.syn_sent_stuck.cause": (
        "The [S] has gone unanswered for {age} (resent {retrans} times). No [R.] came "
        "either, so the packets are probably dropped: a firewall filtering the port, no "
        "route, or the peer host is down."
    ),
    "diag.syn_sent_stuck.fix": (
        "Check that {remote} is reachable and the port is open along the way (firewall, "
        "security group, routing). connect() gives up after tcp_syn_retries = "
        "{syn_retries} retries, about {syn_give_up}."
    ),
    "diag.dead_peer.title": "The peer {remote} stopped answering",
    "diag.dead_peer.cause": (
        "Evidence: {evidence}. Data or probes go out and nothing comes back: the peer "
        "host crashed or lost its network, or a middlebox (NAT, firewall) forgot the "
        "connection."
    ),
    "diag.dead_peer.fix": (
        "The kernel gives up after tcp_retries2 = {retries2} retransmissions, or after "
        "{ka_probes} keepalive probes; use keepalive or application timeouts to notice "
        "sooner, and check the path to the peer."
    ),
    "diag.orphan_lingering.title": "Orphaned {state} for {age}",
    "diag.orphan_lingering.cause": (
        "The application closed this socket, but the peer {remote} does not finish its "
        "side: it does not acknowledge our [F.], or never sends its own."
    ),
    "diag.orphan_lingering.fix": (
        "The kernel ends it by itself: FIN_WAIT2 after tcp_fin_timeout = {fin_timeout} s, "
        "the others after tcp_orphan_retries = {orphan_retries} retries. Many of them "
        "point to a peer that stops reading or closing."
    ),
    # Severities.
    "severity.info": "info",
    "severity.warning": "warning",
    "severity.problem": "problem",
}
