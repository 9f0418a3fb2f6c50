/* The parser's memory of the last dump and its hit path (see DumpParser in netlink.py).
 *
 * On a server most sockets are idle between two polls and the parser hands out their
 * previous SocketRecord again: per message, that is one lookup by the socket's cookie and
 * one comparison of the message (but for its header and tcp_info's ages) with the one
 * remembered. In Python, with a dictionary of (key bytes, record) tuples, those few steps
 * times 50k sockets every second were the largest part of a poll, and grew as the heap
 * aged: every lookup touched a handful of objects scattered over it. Here a `Memory`
 * keeps, for the last dump and for this one, an open-addressing table keyed by cookie
 * and one contiguous arena of keys, written in dump order and so read back in nearly the
 * same order the next time: a hit touches the message, the two tables and its record.
 * Any message that is not a hit is left to the Python parser, which stays the only place
 * that reads a message's fields, and tells the memory with take() and put().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint64_t cookie;
    Py_ssize_t key_at;  /* where its key starts in the arena; -1: no key (never reused) */
    Py_ssize_t key_len;
    PyObject *record;   /* a strong reference; NULL: an empty slot */
    int taken;          /* found by this dump (in the last dump's table) */
} Slot;

typedef struct {
    Slot *slots;
    size_t capacity; /* a power of two, or 0 */
    Py_ssize_t count;
    char *arena;
    Py_ssize_t arena_len, arena_cap;
} Table;

typedef struct {
    PyObject_HEAD
    Table tables[2];
    int current; /* tables[current]: this dump; tables[1 - current]: the last one */
} Memory;

static size_t
slot_index(uint64_t cookie, size_t capacity)
{
    return (size_t)((cookie * 0x9E3779B97F4A7C15ULL) >> 17) & (capacity - 1);
}

static Slot *
table_find(Table *table, uint64_t cookie)
{
    if (table->capacity == 0)
        return NULL;
    size_t i = slot_index(cookie, table->capacity);
    while (table->slots[i].record != NULL) {
        if (table->slots[i].cookie == cookie)
            return &table->slots[i];
        i = (i + 1) & (table->capacity - 1);
    }
    return NULL;
}

static void
table_clear(Table *table)
{
    for (size_t i = 0; i < table->capacity; i++)
        Py_CLEAR(table->slots[i].record);
    table->count = 0;
    table->arena_len = 0;
}

static void
table_free(Table *table)
{
    table_clear(table);
    PyMem_Free(table->slots);
    PyMem_Free(table->arena);
    memset(table, 0, sizeof(*table));
}

/* Room for `count` entries at a load of at most one half; existing entries move. */
static int
table_reserve(Table *table, Py_ssize_t count)
{
    size_t capacity = table->capacity ? table->capacity : 1024;
    while ((size_t)count * 2 > capacity)
        capacity *= 2;
    if (capacity == table->capacity)
        return 0;
    Slot *slots = PyMem_Calloc(capacity, sizeof(Slot));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < table->capacity; i++) {
        Slot *old = &table->slots[i];
        if (old->record == NULL)
            continue;
        size_t j = slot_index(old->cookie, capacity);
        while (slots[j].record != NULL)
            j = (j + 1) & (capacity - 1);
        slots[j] = *old;
    }
    PyMem_Free(table->slots);
    table->slots = slots;
    table->capacity = capacity;
    return 0;
}

/* Remember `record` under `cookie` with `key` (NULL: none), a new reference taken. */
static int
table_put(Table *table, uint64_t cookie, const char *key, Py_ssize_t key_len, PyObject *record)
{
    if (table_reserve(table, table->count + 1) < 0)
        return -1;
    Py_ssize_t key_at = -1;
    if (key != NULL) {
        if (table->arena_len + key_len > table->arena_cap) {
            Py_ssize_t cap = table->arena_cap ? table->arena_cap : 1 << 16;
            while (table->arena_len + key_len > cap)
                cap *= 2;
            char *arena = PyMem_Realloc(table->arena, cap);
            if (arena == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            table->arena = arena;
            table->arena_cap = cap;
        }
        key_at = table->arena_len;
        memcpy(table->arena + key_at, key, key_len);
        table->arena_len += key_len;
    }
    size_t i = slot_index(cookie, table->capacity);
    while (table->slots[i].record != NULL && table->slots[i].cookie != cookie)
        i = (i + 1) & (table->capacity - 1);
    Slot *slot = &table->slots[i];
    Py_INCREF(record);
    if (slot->record == NULL)
        table->count++;
    else
        Py_DECREF(slot->record); /* the same socket twice in one dump: the later wins */
    slot->cookie = cookie;
    slot->key_at = key_at;
    slot->key_len = key_len;
    slot->record = record;
    slot->taken = 0;
    return 0;
}

static void
Memory_dealloc(Memory *self)
{
    table_free(&self->tables[0]);
    table_free(&self->tables[1]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* swap(): a new dump begins; the one just taken becomes the last one. */
static PyObject *
Memory_swap(Memory *self, PyObject *Py_UNUSED(ignored))
{
    Table *last = &self->tables[1 - self->current];
    Py_ssize_t expected = self->tables[self->current].count;
    table_clear(last);
    self->current = 1 - self->current;
    if (table_reserve(last, expected + expected / 4) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
cookie_of(PyObject *object, uint64_t *cookie)
{
    unsigned long long value = PyLong_AsUnsignedLongLong(object);
    if (value == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *cookie = (uint64_t)value;
    return 0;
}

/* take(cookie, default): the last dump's (key or None, record) for a socket this dump
 * has found, which it no longer counts as vanished; `default` when it had none. */
static PyObject *
Memory_take(Memory *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t cookie;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "take(cookie, default)");
        return NULL;
    }
    if (cookie_of(args[0], &cookie) < 0)
        return NULL;
    Table *last = &self->tables[1 - self->current];
    Slot *slot = table_find(last, cookie);
    if (slot == NULL || slot->taken)
        return Py_NewRef(args[1]);
    slot->taken = 1;
    PyObject *key = slot->key_at < 0
                        ? Py_NewRef(Py_None)
                        : PyBytes_FromStringAndSize(last->arena + slot->key_at, slot->key_len);
    if (key == NULL)
        return NULL;
    return Py_BuildValue("(NO)", key, slot->record);
}

/* put(cookie, (key or None, record)): remember a socket of this dump. */
static PyObject *
Memory_put(Memory *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t cookie;
    if (nargs != 2 || !PyTuple_Check(args[1]) || PyTuple_GET_SIZE(args[1]) != 2) {
        PyErr_SetString(PyExc_TypeError, "put(cookie, (key or None, record))");
        return NULL;
    }
    if (cookie_of(args[0], &cookie) < 0)
        return NULL;
    PyObject *key = PyTuple_GET_ITEM(args[1], 0);
    if (key != Py_None && !PyBytes_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "a key is bytes or None");
        return NULL;
    }
    const char *bytes = key == Py_None ? NULL : PyBytes_AS_STRING(key);
    Py_ssize_t length = key == Py_None ? 0 : PyBytes_GET_SIZE(key);
    if (table_put(&self->tables[self->current], cookie, bytes, length,
                  PyTuple_GET_ITEM(args[1], 1)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* vanished(): the last dump's records of the sockets this dump has not found. */
static PyObject *
Memory_vanished(Memory *self, PyObject *Py_UNUSED(ignored))
{
    Table *last = &self->tables[1 - self->current];
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < last->capacity; i++) {
        Slot *slot = &last->slots[i];
        if (slot->record != NULL && !slot->taken && PyList_Append(out, slot->record) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* hits(data, off, seq, now_ms, layouts, out, limits) -> int
 *
 * From `off`, while messages are hits, append each one's remembered record to `out`,
 * remember it for this dump, and step over it. Returns the offset of the first message
 * that is not a hit (or the end of `data`).
 *
 * seq: the dump's sequence number, or -1 to accept any. now_ms: the dump's wall time in
 * milliseconds (a 2MSL timer's key holds its deadline). layouts: message length ->
 * INET_DIAG_INFO's (offset, header, payload start, payload end) or None; a length missing
 * from it is not a hit (its layout is not known yet). limits: (header size, socket message
 * size, ages offset, ages end, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP_INTR, timer offset, expires
 * offset, the 2MSL timer's number, deadline grain in ms, cookie offset), so that the
 * layout constants live in one place, netlink.py. A key is the message but for its header
 * and tcp_info's ages, with a 2MSL timer's deadline over its expiry (netlink._masked).
 */
static PyObject *
Memory_hits(Memory *self, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t off;
    long long seq, now_ms, grain_ms;
    PyObject *layouts, *out;
    Py_ssize_t header_size, message_size, ages_offset, ages_end, timer_at, expires_offset;
    Py_ssize_t cookie_offset;
    unsigned int diag_kind, dump_intr, timewait_timer;

    if (!PyArg_ParseTuple(args, "y*nLLO!O!(nnnnIInnILn)", &data, &off, &seq, &now_ms,
                          &PyDict_Type, &layouts, &PyList_Type, &out, &header_size,
                          &message_size, &ages_offset, &ages_end, &diag_kind, &dump_intr,
                          &timer_at, &expires_offset, &timewait_timer, &grain_ms,
                          &cookie_offset))
        return NULL;
    if (grain_ms <= 0 || timer_at >= message_size || expires_offset + 4 > message_size ||
        expires_offset < header_size || cookie_offset + 8 > message_size) {
        PyErr_SetString(PyExc_ValueError, "inconsistent message layout limits");
        PyBuffer_Release(&data);
        return NULL;
    }

    Table *last = &self->tables[1 - self->current];
    Table *now = &self->tables[self->current];
    const char *bytes = data.buf;
    Py_ssize_t end = data.len;
    PyObject *result = NULL;
    /* For messages of `known_length`: where the ages are cut out (-1: nowhere), and the
     * key's size. */
    uint32_t known_length = 0;
    Py_ssize_t cut_from = -1, cut_to = -1, key_size = 0;
    char key[65536]; /* a hit's key, to remember for the next dump */

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
            if (key_size > (Py_ssize_t)sizeof(key))
                break;
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

        /* This message's key, built in place: [header, cut_from) with the 2MSL deadline
         * over the expiry, then [cut_to, length); compared with the last dump's. */
        Py_ssize_t first_end = cut_from >= 0 ? cut_from : (Py_ssize_t)length;
        memcpy(key, message + header_size, first_end - header_size);
        if (timer)
            memcpy(key + (expires_offset - header_size), &deadline, 4);
        if (cut_from >= 0)
            memcpy(key + (first_end - header_size), message + cut_to, length - cut_to);

        uint64_t cookie;
        memcpy(&cookie, message + cookie_offset, 8);
        Slot *slot = table_find(last, cookie);
        if (slot == NULL || slot->taken || slot->key_at < 0 || slot->key_len != key_size ||
            memcmp(last->arena + slot->key_at, key, key_size) != 0)
            break; /* new, changed or never reused: the Python parser reads it */
        if (PyList_Append(out, slot->record) < 0 ||
            table_put(now, cookie, key, key_size, slot->record) < 0)
            goto done;
        slot->taken = 1;
        off += ((Py_ssize_t)length + 3) & ~(Py_ssize_t)3;
    }
    result = PyLong_FromSsize_t(off);
done:
    PyBuffer_Release(&data);
    return result;
}

/* remembered(): how many sockets the last dump left to compare with. */
static PyObject *
Memory_remembered(Memory *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->tables[1 - self->current].count);
}

static PyMethodDef Memory_methods[] = {
    {"swap", (PyCFunction)Memory_swap, METH_NOARGS,
     "A new dump begins: the one just taken becomes the last one."},
    {"remembered", (PyCFunction)Memory_remembered, METH_NOARGS,
     "How many sockets the last dump left to compare with."},
    {"take", (PyCFunction)(void (*)(void))Memory_take, METH_FASTCALL,
     "take(cookie, default): the last dump's (key or None, record) for a socket found again."},
    {"put", (PyCFunction)(void (*)(void))Memory_put, METH_FASTCALL,
     "put(cookie, (key or None, record)): remember a socket of this dump."},
    {"vanished", (PyCFunction)Memory_vanished, METH_NOARGS,
     "The last dump's records of the sockets this dump has not found."},
    {"hits", (PyCFunction)Memory_hits, METH_VARARGS,
     "Append the remembered records of the messages from `off` on while they are hits; "
     "return the offset of the first one that is not."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MemoryType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tcpwatch.sources._reuse.Memory",
    .tp_doc = PyDoc_STR("The last dump's sockets and this one's, by cookie (see netlink.py)."),
    .tp_basicsize = sizeof(Memory),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Memory_dealloc,
    .tp_methods = Memory_methods,
};

static struct PyModuleDef reuse_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_reuse",
    .m_doc = "The parser's memory of the last dump and its hit path, in C (see netlink.py).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__reuse(void)
{
    if (PyType_Ready(&MemoryType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&reuse_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Memory", (PyObject *)&MemoryType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
