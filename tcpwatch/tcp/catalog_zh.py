"""简体中文说明文本：带命名字段的模板，用实时数值填充。

键和字段与 `catalog_en` 相同；各字段的含义见 `tcpwatch.tcp.explain`。
"""

from __future__ import annotations

TEXT: dict[str, str] = {
    "unit.s": "{s} 秒",
    "unit.min": "{m} 分 {s} 秒",
    "unit.h": "{h} 小时 {m} 分",
    "unit.d": "{d} 天 {h} 小时",
    "age.at_least": "至少 {age}",
    "unknown_process": "未知进程（以 root 运行才能看到所有属主）",
    "no_process": "无进程（应用已经关闭了它）",
    "awaiting_accept_process": "尚无进程（在全连接队列中等待 accept()）",
    "listening_process": "监听的应用",
    "process": "{name} (pid {pid})",
    "former_process": "现无进程，原属 {name} (pid {pid})",
    "path.sent": "发出 {flags}",
    "path.recv": "收到 {flags}",
    "path.timer": "{timer} 定时器到期",
    "path.enter": "→ {state}",
    "path.inferred": "（推断）",
    "path.join": " · ",
    "path.sep": "；",
    "path.first_seen": "tcpwatch 第一次看到它时已处于 {state}。",
    "path.inferred_note": (
        "标为（推断）的步骤没有被轮询直接看到，但 TCP 在两次轮询之间必然经过了它们。"
    ),
    "state.LISTEN.title": "LISTEN — 在 {local} 上等待连接",
    "state.LISTEN.meaning": (
        "这是服务端套接字：应用调用了 listen()，之后到达 {local} 的每个 [S] 都由内核自行应答。"
    ),
    "state.LISTEN.next": (
        "它会一直存在，直到应用关闭它。每个到来的 [S] 会得到一个 [S.]，并以 SYN_RECV "
        "等待客户端的 [.]（tcp_max_syn_backlog = {max_syn_backlog}，tcp_syncookies = "
        "{syncookies}）；握手完成的连接进入全连接队列（当前 {recv_q}，上限 backlog "
        "{send_q}，somaxconn = {somaxconn}），等应用调用 accept() 取走。"
    ),
    "state.SYN_SENT.title": "SYN_SENT — 正在连接 {remote}",
    "state.SYN_SENT.meaning": (
        "本端调用了 connect() 并发出 [S]，正在等对端回 [S.]（三次握手的第一步）。"
    ),
    "state.SYN_SENT.next": (
        "对端回 [S.] 时，本端回 [.] 并进入 ESTABLISHED；对端回 [R.] 说明那里没有监听，"
        "connect() 报错“connection refused”（连接被拒绝）。如果一直没有回应，[S] 会在 "
        "1、2、4… 秒后重发，共 tcp_syn_retries = {syn_retries} 次，大约 {syn_give_up} "
        "后 connect() 放弃（目前已重发 {retrans} 次）。"
    ),
    "state.SYN_RECV.title": "SYN_RECV — 与 {remote} 的握手完成了一半",
    "state.SYN_RECV.meaning": (
        "客户端的 [S] 到达本机的监听套接字，已回复 [S.]；内核在等客户端的 [.] 来完成握手。"
    ),
    "state.SYN_RECV.next": (
        "客户端的 [.] 一到，连接就变成 ESTABLISHED 并进入监听套接字的全连接队列。"
        "如果等不到，[S.] 会重发 tcp_synack_retries = {synack_retries} 次（约 "
        "{synack_give_up}），然后丢弃这次尝试（目前已重发 {retrans} 次）。"
    ),
    "state.ESTABLISHED.title": "ESTABLISHED — {local} 与 {remote} 之间已连通",
    "state.ESTABLISHED.meaning": (
        "握手（[S]、[S.]、[.]）已经完成，双方都可以发送数据（[P.]）并确认收到的数据（[.]）。"
    ),
    "state.ESTABLISHED.next": (
        "连接保持打开，直到某一端调用 close() 或 shutdown()（随后发出 [F.] 开始关闭），"
        "或被 [R] 中止。空闲的连接不发送任何报文，除非开启了保活（keepalive）：静默 "
        "{ka_time} 秒后发出第一个探测，之后每 {ka_intvl} 秒一次，连续 {ka_probes} 次无应答"
        "内核就重置连接（合计 {ka_give_up}）。"
    ),
    "state.ESTABLISHED.next_unaccepted": (
        "它在监听套接字的全连接队列里等待，直到应用调用 accept()；之后它就是该进程的一个"
        "普通的已打开连接。如果应用先关闭了监听套接字，内核会重置它（[R]），客户端读到"
        "“connection reset by peer”（连接被对端重置）。"
    ),
    "state.ESTABLISHED.next_keepalive": (
        "已开启保活：下一次探测在 {timer_left} 后（已发出但无应答的探测：{retrans}）。"
        "每隔 {ka_intvl} 秒一次，{ka_probes} 次都无应答时，内核判定对端已失联并重置连接。"
    ),
    "state.ESTABLISHED.next_retransmit": (
        "已发送的数据还在等确认：第 {retrans} 次重传将在 {timer_left} 后进行。每次等待时间"
        "翻倍；重传 tcp_retries2 = {retries2} 次（默认约 15 分钟）后内核放弃并断开连接。"
    ),
    "state.ESTABLISHED.next_persist": (
        "对端的接收窗口为零（它的应用没有读数据）：{timer_left} 后发送窗口探测。"
        "对端读走数据、窗口重新打开后，发送才会继续。"
    ),
    "state.FIN_WAIT1.title": "FIN_WAIT1 — 本端已关闭，等待对端的 [.]",
    "state.FIN_WAIT1.meaning": ("本端调用了 close() 或 shutdown() 并发出 [F.]，正在等对端确认。"),
    "state.FIN_WAIT1.next": (
        "收到对端的 [.] 后进入 FIN_WAIT2；如果对端自己的 [F.] 与这个确认一起到达，就直接"
        "进入 TIME_WAIT；如果对端的 [F.] 先到，则进入 CLOSING。未被确认的 FIN 会像数据"
        "一样重传（目前已重传 {retrans} 次）。"
    ),
    "state.FIN_WAIT1.next_orphan": (
        "已没有进程持有它：内核最多重发 [F.] tcp_orphan_retries = {orphan_retries} 次"
        "（0 表示 8 次），然后丢弃这个连接（目前已重发 {retrans} 次）。"
    ),
    "state.FIN_WAIT2.title": "FIN_WAIT2 — 本端已关闭，等待对端的 [F.]",
    "state.FIN_WAIT2.meaning": (
        "对端已确认本端的 [F.]：本端发送方向结束了，套接字在等对端关闭它那一侧。"
    ),
    "state.FIN_WAIT2.next": (
        "对端的 [F.] 到达后，本端回 [.] 并进入 TIME_WAIT。在此之前对端仍可发送数据，本端"
        "照常接收。如果应用仍持有这个套接字（用的是 shutdown(SHUT_WR)），这个状态可以"
        "一直持续。"
    ),
    "state.FIN_WAIT2.next_orphan": (
        "已没有进程持有它，所以内核最多等 tcp_fin_timeout = {fin_timeout} 秒，"
        "等不到对端的 [F.] 就直接丢弃，不再发送任何报文。"
    ),
    "state.CLOSING.title": "CLOSING — 双方同时关闭",
    "state.CLOSING.meaning": (
        "本端发出 [F.] 后，在自己的 FIN 被确认之前先收到了对端的 [F.]：两个 FIN 在途中"
        "交错（同时关闭）。"
    ),
    "state.CLOSING.next": "对端确认本端的 [F.] 后，进入 TIME_WAIT，持续 {tw_len} 秒。",
    "state.TIME_WAIT.title": "TIME_WAIT — 已关闭，等待 2MSL 结束",
    "state.TIME_WAIT.meaning": (
        "连接已经结束，且是本端先关闭的；内核保留一条简短记录，以便在最后的 [.] 丢失时"
        "能再次应答，并让网络中残留的旧报文消失。"
    ),
    "state.TIME_WAIT.next": (
        "它将在 {timer_left} 后消失：Linux 的 TIME_WAIT 固定为 2MSL = {tw_len} 秒（不是可"
        "调参数）。期间若对端重发 [F.]，本端会再回一次 [.]。tcp_tw_reuse = {tw_reuse}"
        "（1 开启，2 仅回环）时，新的出站连接可以提前复用这个四元组。"
    ),
    "state.TIME_WAIT.next_notimer": (
        "它最多在开始后 {tw_len} 秒消失：Linux 的 TIME_WAIT 固定为 2MSL = {tw_len} 秒"
        "（不是可调参数）。tcp_tw_reuse = {tw_reuse} 时，新的出站连接可以提前复用这个四元组。"
    ),
    "state.CLOSE_WAIT.title": "CLOSE_WAIT — 对端已关闭，等待本端 close()",
    "state.CLOSE_WAIT.meaning": (
        "对端发来了 [F.]（它不会再发数据），本端已确认；但本机的应用还没有关闭自己的套接字。"
    ),
    "state.CLOSE_WAIT.next": (
        "在 {process} 调用 close()（或 shutdown()）之前什么都不会发生；调用后发出 [F.]，"
        "进入 LAST_ACK。内核不会让这个状态超时：忘记关闭的程序会一直占着这个套接字、"
        "它的文件描述符和内存。"
    ),
    "state.CLOSE_WAIT.next_unaccepted": (
        "它在监听套接字的全连接队列里等待，直到应用调用 accept()：之后应用先读到客户端发来的"
        "数据，再读到流结束（客户端的 [F.]）；关闭它就发出 [F.] 并进入 LAST_ACK。如果应用先"
        "关闭了监听套接字，内核会重置它（[R]）。"
    ),
    "state.LAST_ACK.title": "LAST_ACK — 在对端之后关闭，等待最后的 [.]",
    "state.LAST_ACK.meaning": ("对端先关闭，本端随后也发出了自己的 [F.]，正在等对端确认。"),
    "state.LAST_ACK.next": (
        "对端的 [.] 一到，连接立即结束（CLOSED；对端进入 TIME_WAIT）。如果一直没到，"
        "[F.] 会重发（目前 {retrans} 次），直到内核放弃。"
    ),
    "state.CLOSE.title": "CLOSE — 没有连接的套接字",
    "state.CLOSE.meaning": (
        "内核自己的关闭状态：套接字对象还在（某个程序持有它，或即将被释放），但上面没有连接。"
    ),
    "state.CLOSE.next": "网络上不会再有任何动作；应用调用 close() 即可释放它。",
    "state.CLOSED.title": "CLOSED — 已消失",
    "state.CLOSED.meaning": "这个连接在内核中已经不存在了。",
    "state.CLOSED.next": "没有后续了：tcpwatch 会在屏幕上保留它一小会儿，方便查看它是怎么结束的。",
    "who.local": "本端（{process}）先关闭：第一个 [F.] 是本端发出的。",
    "who.peer": "对端（{remote}）先关闭：它的 [F.] 在本端关闭之前就到了。",
    "who.both": "双方同时关闭：两个 [F.] 在途中交错（经过 CLOSING）。",
    "who.reset": "双方都没有正常关闭：连接被重置（[R]）。",
    "tag.listener": "listener（监听）：等待新连接到来的套接字。",
    "tag.half_open": (
        "half_open（半开）：只有一端认为连接存在或正在建立——握手进行中，或对端已不再应答。"
    ),
    "tag.half_closed": (
        "half_closed（半关闭）：一个方向已经结束（发出了 [F.]），另一个方向仍可传数据。"
    ),
    "tag.lingering": (
        "lingering（滞留）：连接已结束或正在关闭，但套接字还在（TIME_WAIT，或处于关闭中"
        "状态超过 {lingering} 秒）。"
    ),
    "tag.orphan": "orphan（孤儿）：已没有进程持有这个正在关闭的套接字，由内核独自完成关闭。",
    "tag.unaccepted": (
        "unaccepted（未被接受）：内核已独自完成握手，连接在监听套接字的全连接队列（accept "
        "队列）中等待；应用调用 accept() 之前没有进程持有它。若处于 CLOSE_WAIT，说明客户端"
        "在等待期间已经关闭了它。"
    ),
    "flag.S": "[S] SYN：请求建立连接，并带上本端的初始序号",
    "flag.S.": "[S.] SYN+ACK：确认收到的 SYN，同时发出应答方自己的 SYN",
    "flag..": "[.] ACK：只确认数据或 SYN/FIN，不携带其他内容",
    "flag.P.": "[P.] PSH+ACK：携带数据，并提示对方立即交给应用",
    "flag.F.": "[F.] FIN+ACK：发送方不再有数据要发（同时确认已收到的内容）",
    "flag.R": "[R] RST：立即中止连接",
    "flag.R.": "[R.] RST+ACK：中止；作为对某个报文的回应发出，例如发往未监听端口的 SYN",
    "term.handshake": (
        "三次握手：[S]、[S.]、[.]。双方都要发出自己的初始序号并得到确认；中间那个报文"
        "替服务端同时完成了这两件事，所以三个报文就够了；只有两个的话，服务端无法确定客户端"
        "收到了它的序号。"
    ),
    "term.close": (
        "四次挥手：两个方向各自用一个 FIN 和对应的 ACK 关闭。先收到 FIN 的一方可能还有数据"
        "要发，所以它的 ACK 和它自己的 FIN 通常分开发送——除非它立刻关闭，两者才会合在一起。"
    ),
    "term.isn": (
        "ISN（初始序号）：一个方向上字节计数的随机起点；随机是为了让旧连接的残留报文或伪造"
        "报文对不上新连接。"
    ),
    "term.seq_ack": (
        "序号与确认号：seq 给发送的字节编号；ack 是期望收到的下一个字节的编号，因此确认了它"
        "之前的全部内容。SYN 和 FIN 各占用一个序号。"
    ),
    "term.mss": "MSS（最大报文段长度）：单个报文能携带的最大数据量，双方在各自的 SYN 中告知对方。",
    "term.window": (
        "窗口：接收方还能缓存多少字节；发送方不得超出（流量控制）。窗口为零时发送方停下，"
        "等读取方跟上。"
    ),
    "term.msl": (
        "MSL（报文最大生存时间）：报文在网络中可能存活的最长时间。TIME_WAIT 持续 2MSL，"
        "以便丢失的最后一个 ACK 可以重发，并让旧连接的残留报文在同一四元组再次使用前过期；"
        "Linux 把它固定为 60 秒。"
    ),
    "term.rto": (
        "重传超时：在规定时间内没有收到确认，报文就会重发，且每次等待时间翻倍（指数退避）。"
        "初值来自测得的往返时间；SYN 的初值是 1 秒。"
    ),
    "term.close_vs_shutdown": (
        "close() 与 shutdown()：close() 只是放弃这个描述符，只有指向该连接的最后一个描述符"
        "关闭时连接才真正关闭；shutdown(SHUT_WR) 不管还有谁持有，都立即发出 FIN，并且仍可继续读取。"
    ),
    "term.connection": (
        "TCP 连接就是两端各自保存的状态（序号、窗口、定时器），用四元组标识：本地地址和端口、"
        "远端地址和端口。"
    ),
    "note.flags": "此路径中的标志：{flags}。",
    "note.tcp_info": (
        "内核测量值：往返时间 {rtt_ms} 毫秒，重传超时 {rto_ms} 毫秒，MSS {mss} 字节，"
        "拥塞窗口 {cwnd} 个报文段，累计重传 {total_retrans} 次。"
    ),
    "note.queues.LISTEN": (
        "Recv-Q {recv_q} = 已完成握手、等待 accept() 的连接数；Send-Q {send_q} = backlog，"
        "即最多允许排队的数量。"
    ),
    "note.queues.CLOSE_WAIT": (
        "Recv-Q {recv_q}：应用尚未读取的字节；对端的 FIN 也算一个，所以 CLOSE_WAIT 通常显示 "
        "Recv-Q 为 1。Send-Q {send_q}：已发送但尚未被确认的字节。"
    ),
    "note.queues.default": (
        "Recv-Q {recv_q}：已收到但应用还没读取的字节；Send-Q {send_q}：已发送但对端还没确认的字节。"
    ),
    "note.queues.none": "在这个状态下 Recv-Q 和 Send-Q 没有意义。",
    "note.listener.wildcard": (
        "绑定在 {address}：从本机（本网络命名空间内）任何地址进来的客户端都会被接受。"
    ),
    "note.listener.loopback": (
        "只绑定在 {address}：本机上连接 {address} 的客户端可以连上，但从本机其他任何地址"
        "进来的客户端都会收到 [R.]——“connection refused”（连接被拒绝）——因为那些地址上"
        "没有监听。要在所有地址上接受连接，请绑定 0.0.0.0 或 ::。"
    ),
    "note.listener.specific": (
        "只绑定在 {address}：通过本机其他地址进来的客户端会收到 [R.]（连接被拒绝）。"
    ),
    "note.listener.queue": (
        "全连接队列 {recv_q} / {send_q}：后者是应用传给 listen() 的 backlog，"
        "上限为 somaxconn = {somaxconn}。"
    ),
    "note.listener.children": (
        "此端口当前有 {syn_recv} 个握手进行中（SYN_RECV），{accepted} 个已被应用 accept 的"
        "已建立连接，{unaccepted} 个在全连接队列中等待 accept()。"
    ),
    "note.listener.unlisted": (
        "全连接队列里有 {recv_q} 个，比这里列出的多 {count} 个。多半是在等待期间被客户端"
        "重置（[R]）的连接：内核不再列出它们，但它们仍留在队列里，直到 accept() 取走；之后"
        "第一次读会失败，报“connection reset by peer”（连接被对端重置）。轮询进行期间有连接"
        "被 accept 或新到达，也会让两者暂时不一致。"
    ),
    "note.keepalive": (
        "保活：连接静默 {ka_time} 秒后，发出一个探测报文（序号为旧值的 [.]）请对端应答；"
        "之后每 {ka_intvl} 秒重复，{ka_probes} 次都无应答就重置连接。这些是本机默认值"
        "（tcp_keepalive_*），程序也可以为单个套接字另行设置。"
    ),
    "note.reset": (
        "重置（[R]）会立即中止连接：没有 FIN 交换，没有 TIME_WAIT，未读的数据直接丢弃。"
        "它用于回应发往无人监听端口的报文（连接被拒绝），也会在带着未读数据调用 close() "
        "或设置 SO_LINGER 为 0 时发出，或来自已经不认识这个连接的对端。"
    ),
    "note.refused": (
        "对 [S] 回以 [R.]，表示 {remote} 上没有监听：即“connection refused”（连接被拒绝）。"
        "常见原因是服务端只绑定了 127.0.0.1，而客户端用的是别的地址。"
    ),
    "note.half_close": (
        "半关闭：发出 [F.] 的一端（close() 或 shutdown(SHUT_WR)）不再发送数据，但仍能接收；"
        "另一端在自己关闭之前可以继续发送。"
    ),
    "note.fin_ack": (
        "在 tcpdump 里关闭报文显示为 [F.] 而不是 [F]：FIN 同时携带了确认，握手之后的每个"
        "报文都会这样做。"
    ),
    "note.peer": "连接的另一端也在本机：{peer_state}，由 {peer_process} 持有。",
    "diag.closed_in_accept_queue.title": (
        "{listener} 的全连接队列中有 {count} 个连接已被客户端关闭"
    ),
    "diag.closed_in_accept_queue.cause": (
        "这些连接还在等 {process} 调用 accept() 时，客户端就发来了 [F.]（关闭了连接，或用 "
        "shutdown() 结束了发送）；最早的 [F.] 是 {age} 前到达的。应用接受连接太慢或已停止 "
        "accept()：这些客户端要么已经放弃，要么还在等一个没人开始处理的应答。这不是 "
        "CLOSE_WAIT 泄漏：还没有进程持有它们。"
    ),
    "diag.closed_in_accept_queue.fix": (
        "查明是什么拖住了 accept 循环：线程阻塞或过忙、工作线程池已满、accept() 之前做了耗时"
        "的事。这样的连接被 accept 后，先读到客户端发来的数据，然后读到流结束。调大 backlog "
        "只会让更多客户端排队等待。"
    ),
    "diag.close_wait_leak.title": "{process} 泄漏了 {count} 个 CLOSE_WAIT 连接",
    "diag.close_wait_leak.cause": (
        "有 {count} 个连接处于 CLOSE_WAIT，最早的已持续 {age}：对端已经关闭了它们，"
        "但 {process} 始终没有调用 close()。内核会无限期等待应用，所以每个泄漏的套接字"
        "都占着一个文件描述符和内存；这是程序的缺陷（漏了 close()、线程卡住、连接池耗尽）。"
    ),
    "diag.close_wait_leak.fix": (
        "让程序在读到 0（流结束）时关闭套接字，所有出错分支也要关闭；检查它的线程或连接池。"
        "重启程序可以释放这些套接字。"
    ),
    "diag.time_wait_buildup.title": "发往 {destination} 的 TIME_WAIT 有 {count} 个",
    "diag.time_wait_buildup.cause": (
        "本机频繁地向 {destination} 建立又关闭短连接，而且是本机先关闭，所以每个连接都要在 "
        "TIME_WAIT 中等 {tw_len} 秒；每个都占用 ip_local_port_range {port_first}–{port_last} "
        "中 {ports} 个本地端口里的一个。"
    ),
    "diag.time_wait_buildup.fix": (
        "复用连接（HTTP keep-alive、连接池），或让服务端先关闭。tcp_tw_reuse = {tw_reuse}"
        "（设为 1 时新的出站连接可以安全复用 TIME_WAIT 端口）；扩大 ip_local_port_range "
        "也能留出更多余地。"
    ),
    "diag.ephemeral_port_pressure.title": (
        "发往 {destination} 的本地端口已用 {percent}%（{count} / {ports}）"
    ),
    "diag.ephemeral_port_pressure.cause": (
        "到同一个目的地址和端口的每个连接，都要从 ip_local_port_range {port_first}–"
        "{port_last} 中占用一个自己的本地端口；现在已占用 {count} 个（含 TIME_WAIT）。"
        "用完之后 connect() 会失败，报“Cannot assign requested address”（EADDRNOTAVAIL）。"
    ),
    "diag.ephemeral_port_pressure.fix": (
        "复用连接而不是每个请求新建一个；扩大 ip_local_port_range；分散到更多目的地址或"
        "端口；开启 tcp_tw_reuse（当前 {tw_reuse}）。"
    ),
    "diag.syn_recv_buildup.title": "{listener} 上有 {count} 个未完成的握手",
    "diag.syn_recv_buildup.cause": (
        "大量 [S] 到达，但最后的 [.] 没有来：可能是 SYN 洪水（伪造的源地址永远不会回应 "
        "[S.]），也可能是客户端的 ACK 在回程中丢失。每个都要等约 {synack_give_up}"
        "（SYN-ACK 重发 {synack_retries} 次）。"
    ),
    "diag.syn_recv_buildup.fix": (
        "保持 tcp_syncookies 开启（当前 {syncookies}），这样 SYN 队列满了也不会挡住真正的"
        "客户端；调低 tcp_synack_retries 可以更快丢弃无效尝试；检查回到客户端的网络路径，"
        "并在上游过滤洪水流量。"
    ),
    "diag.accept_queue_overflow.title": "{listener} 的全连接队列已满 {percent}%",
    "diag.accept_queue_overflow.cause": (
        "{recv_q} 个已完成握手的连接在等 accept()，而 backlog 是 {send_q}：{process} "
        "accept 得太慢。队列满时内核会丢弃新的握手（客户端会看到延迟和重试），若 "
        "tcp_abort_on_overflow = 1（当前 {abort_on_overflow}）则直接重置它们。"
    ),
    "diag.accept_queue_overflow.fix": (
        "加快 accept 循环（更多工作线程，accept() 之前不做阻塞操作）。listen() 的 backlog "
        "调大也只在 somaxconn = {somaxconn} 以内有效。"
    ),
    "diag.loopback_only_listener.title": "{listener} 只接受本机客户端",
    "diag.loopback_only_listener.cause": (
        "它绑定在回环地址 {address} 上，所以通过本机其他任何地址来的客户端都会收到 [R.]："
        "“connection refused”（连接被拒绝）。"
    ),
    "diag.loopback_only_listener.fix": (
        "如果其他主机（或容器）需要连接，请绑定 0.0.0.0 或 ::（或它们使用的地址）；"
        "如果本来就只供本机使用，则没有问题。"
    ),
    "diag.syn_sent_stuck.title": "connect() 到 {remote} 没有回应",
    "diag.syn_sent_stuck.cause": (
        "[S] 已经 {age} 没有得到回应（重发了 {retrans} 次），也没有收到 [R.]，所以报文很可能"
        "被丢弃了：防火墙过滤了该端口、没有路由，或对端主机已宕机。"
    ),
    "diag.syn_sent_stuck.fix": (
        "确认 {remote} 可达，且沿途端口是放行的（防火墙、安全组、路由）。connect() 在 "
        "tcp_syn_retries = {syn_retries} 次重发后放弃，约 {syn_give_up}。"
    ),
    "diag.dead_peer.title": "对端 {remote} 不再应答",
    "diag.dead_peer.cause": (
        "证据：{evidence}。数据或探测发出去了却没有任何回应：对端主机崩溃或断网，或者"
        "中间设备（NAT、防火墙）已经忘记了这个连接。"
    ),
    "diag.dead_peer.fix": (
        "内核在重传 tcp_retries2 = {retries2} 次或保活探测 {ka_probes} 次无应答后放弃；"
        "用保活或应用层超时可以更早发现，并检查到对端的网络路径。"
    ),
    "diag.orphan_lingering.title": "孤儿 {state} 已持续 {age}",
    "diag.orphan_lingering.cause": (
        "应用已经关闭了这个套接字，但对端 {remote} 没有完成它那一侧：既不确认本端的 [F.]，"
        "也不发出自己的 [F.]。"
    ),
    "diag.orphan_lingering.fix": (
        "内核会自行结束它：FIN_WAIT2 在 tcp_fin_timeout = {fin_timeout} 秒后，其他状态在 "
        "tcp_orphan_retries = {orphan_retries} 次重试后。大量出现说明对端停止了读取或关闭。"
    ),
    "severity.info": "提示",
    "severity.warning": "警告",
    "severity.problem": "问题",
}
