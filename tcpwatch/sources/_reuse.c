/* The hit path of DumpParser.feed (see netlink.py), in C.
 *
 * On a server most sockets are idle between two polls and the parser hands out their
 * previous SocketRecord again: per message, that is one lookup by the socket's cookie and
 * one comparison of the message (but for its header and tcp_info's ages) with the one
 * remembered. In Python those few steps, times 50k sockets every second, were the largest
 * part of a poll; here they run without the interpreter, comparing the kernel's bytes in
 * place. Any message that is not such a hit is left to the Python parser, which stays the
 * only place that reads a message's fields.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* reuse_hits(data, off, seq, now_ms, layouts, previous, current, out, limits) -> int
 *
 * From `off`, while messages are hits, append each one's remembered record to `out`,
 * move its entry from `previous` to `current`, and step over it. Returns the offset of
 * the first message that is not a hit (or the end of `data`).
 *
 * seq: the dump's sequence number, or -1 to accept any. now_ms: the dump's wall time in
 * milliseconds (a 2MSL timer's key holds its deadline). layouts: message length ->
 * INET_DIAG_INFO's (offset, header, payload start, payload end) or None; a length missing
 * from it is not a hit (its layout is not known yet). limits: (header size, socket message
 * size, ages offset, ages end, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP_INTR, timer offset, expires
 * offset, the 2MSL timer's number, deadline grain in ms, cookie offset), so that the
 * layout constants live in one place, netlink.py. previous and current map a socket's
 * cookie to (its key, its record): the key is the message but for its header and
 * tcp_info's ages, with a 2MSL timer's deadline over its expiry (netlink._masked), or
 * None for a socket that is never reused (a running timer other than 2MSL).
 */
static PyObject *
reuse_hits(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer data;
    Py_ssize_t off;
    long long seq, now_ms, grain_ms;
    PyObject *layouts, *previous, *current, *out;
    Py_ssize_t header_size, message_size, ages_offset, ages_end, timer_at, expires_offset;
    Py_ssize_t cookie_offset;
    unsigned int diag_kind, dump_intr, timewait_timer;

    if (!PyArg_ParseTuple(args, "y*nLLO!O!O!O!(nnnnIInnILn)", &data, &off, &seq, &now_ms,
                          &PyDict_Type, &layouts, &PyDict_Type, &previous, &PyDict_Type,
                          &current, &PyList_Type, &out, &header_size, &message_size,
                          &ages_offset, &ages_end, &diag_kind, &dump_intr, &timer_at,
                          &expires_offset, &timewait_timer, &grain_ms, &cookie_offset))
        return NULL;
    if (grain_ms <= 0 || timer_at >= message_size || expires_offset + 4 > message_size ||
        expires_offset < header_size || cookie_offset + 8 > message_size) {
        PyErr_SetString(PyExc_ValueError, "inconsistent message layout limits");
        PyBuffer_Release(&data);
        return NULL;
    }

    const char *bytes = data.buf;
    Py_ssize_t end = data.len;
    PyObject *result = NULL;
    /* For messages of `known_length`: where the ages are cut out (-1: nowhere), and the
     * key's size. */
    uint32_t known_length = 0;
    Py_ssize_t cut_from = -1, cut_to = -1, key_size = 0;

    while (off >= 0 && end - off >= message_size) {
        uint32_t length, message_seq;
        uint16_t kind, flags;
        memcpy(&length, bytes + off, 4);
        memcpy(&kind, bytes + off + 4, 2);
        memcpy(&flags, bytes + off + 6, 2);
        memcpy(&message_seq, bytes + off + 8, 4);
        if (kind != diag_kind || (flags & dump_intr) || length < (uint32_t)message_size ||
            (Py_ssize_t)length > end - off || (seq >= 0 && message_seq != (uint32_t)seq))
            break;

        /* Messages of one dump mostly share a length: its layout is looked up, and where
         * its key leaves out tcp_info's ages worked out, once. The key is the message
         * without its header, and without the ages when tcp_info carries them (the same
         * rule as netlink._masked). */
        if (length != known_length) {
            PyObject *length_key = PyLong_FromUnsignedLong(length);
            if (length_key == NULL)
                goto done;
            PyObject *layout = PyDict_GetItemWithError(layouts, length_key); /* borrowed */
            Py_DECREF(length_key);
            if (layout == NULL) {
                if (PyErr_Occurred())
                    goto done;
                break; /* layout not known yet */
            }
            cut_from = cut_to = -1;
            if (layout != Py_None) {
                if (!PyTuple_Check(layout) || PyTuple_GET_SIZE(layout) != 4) {
                    PyErr_SetString(PyExc_TypeError, "a layout is a 4-tuple or None");
                    goto done;
                }
                Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout, 2));
                Py_ssize_t stop = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout, 3));
                if (PyErr_Occurred())
                    goto done;
                if (stop - start >= ages_end) {
                    cut_from = start + ages_offset;
                    cut_to = start + ages_end;
                }
            }
            if (cut_from >= 0 && (cut_from < expires_offset + 4 || cut_to > (Py_ssize_t)length))
                break; /* not a layout of this length: let Python judge */
            key_size = (Py_ssize_t)length - header_size;
            if (cut_from >= 0)
                key_size -= cut_to - cut_from;
            known_length = length;
        }

        /* A running timer's expiry changes every dump: not a hit, but for 2MSL, whose
         * deadline (in whole grains) takes the expiry's place in the key. */
        const char *message = bytes + off;
        uint8_t timer = (uint8_t)message[timer_at];
        uint32_t deadline = 0;
        if (timer) {
            if (timer != timewait_timer)
                break;
            uint32_t expires;
            memcpy(&expires, message + expires_offset, 4);
            deadline = (uint32_t)((now_ms + (long long)expires) / grain_ms);
        }

        /* The last dump's (key, record) for this socket's cookie, and whether its key is
         * this message's, compared in place: [header, cut_from) with the 2MSL deadline
         * over the expiry, then [cut_to, length). */
        uint32_t cookie_low, cookie_high;
        memcpy(&cookie_low, message + cookie_offset, 4);
        memcpy(&cookie_high, message + cookie_offset + 4, 4);
        PyObject *cookie =
            PyLong_FromUnsignedLongLong(((unsigned long long)cookie_high << 32) | cookie_low);
        if (cookie == NULL)
            goto done;
        PyObject *entry = PyDict_GetItemWithError(previous, cookie); /* borrowed */
        if (entry == NULL) {
            Py_DECREF(cookie);
            if (PyErr_Occurred())
                goto done;
            break; /* new: the Python parser reads it */
        }
        PyObject *key = PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) == 2
                            ? PyTuple_GET_ITEM(entry, 0)
                            : NULL;
        if (key == Py_None) {
            Py_DECREF(cookie);
            break; /* never reused: the Python parser reads it */
        }
        if (key == NULL || !PyBytes_Check(key)) {
            Py_DECREF(cookie);
            PyErr_SetString(PyExc_TypeError, "a remembered entry is (bytes or None, record)");
            goto done;
        }
        const char *was = PyBytes_AS_STRING(key);
        Py_ssize_t first_end = cut_from >= 0 ? cut_from : (Py_ssize_t)length;
        int same = PyBytes_GET_SIZE(key) == key_size;
        if (same && timer) {
            Py_ssize_t at = expires_offset - header_size;
            same = memcmp(was, message + header_size, at) == 0 &&
                   memcmp(was + at, &deadline, 4) == 0 &&
                   memcmp(was + at + 4, message + expires_offset + 4,
                          first_end - expires_offset - 4) == 0;
        } else if (same) {
            same = memcmp(was, message + header_size, first_end - header_size) == 0;
        }
        if (same && cut_from >= 0)
            same = memcmp(was + (first_end - header_size), message + cut_to,
                          length - cut_to) == 0;
        if (!same) {
            Py_DECREF(cookie);
            break; /* changed: the Python parser reads it */
        }
        /* `current` holds the entry before `previous` lets go of it. */
        if (PyList_Append(out, PyTuple_GET_ITEM(entry, 1)) < 0 ||
            PyDict_SetItem(current, cookie, entry) < 0 || PyDict_DelItem(previous, cookie) < 0) {
            Py_DECREF(cookie);
            goto done;
        }
        Py_DECREF(cookie);
        off += ((Py_ssize_t)length + 3) & ~(Py_ssize_t)3;
    }
    result = PyLong_FromSsize_t(off);
done:
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef reuse_methods[] = {
    {"reuse_hits", reuse_hits, METH_VARARGS,
     "Append the remembered records of the messages from `off` on while they are hits; "
     "return the offset of the first one that is not."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef reuse_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_reuse",
    .m_doc = "The parser's hit path, in C (see netlink.py).",
    .m_size = -1,
    .m_methods = reuse_methods,
};

PyMODINIT_FUNC
PyInit__reuse(void)
{
    return PyModule_Create(&reuse_module);
}
