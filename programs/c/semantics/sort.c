/* Sorting: insertion sort, recursive quicksort, heap sort and a bottom-up
 * merge sort on the same pseudo-random data (signed and unsigned keys,
 * duplicates), plus binary search; every result must be sorted and equal. */
#include "prog.h"

#define COUNT 300

static volatile const uint32_t seed = 0x5eed1234u;
static int32_t original[COUNT];
static int32_t work[COUNT];
static int32_t scratch[COUNT];

static void insertion_sort(int32_t *a, uint32_t n) {
    for (uint32_t i = 1; i < n; i++) {
        int32_t key = a[i];
        uint32_t j = i;
        while (j > 0 && a[j - 1] > key) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = key;
    }
}

static void swap(int32_t *a, int32_t *b) {
    int32_t t = *a;
    *a = *b;
    *b = t;
}

static void quicksort(int32_t *a, int32_t lo, int32_t hi) {
    if (lo >= hi) {
        return;
    }
    int32_t pivot = a[lo + (hi - lo) / 2];
    int32_t i = lo, j = hi;
    while (i <= j) {
        while (a[i] < pivot) {
            i++;
        }
        while (a[j] > pivot) {
            j--;
        }
        if (i <= j) {
            swap(&a[i], &a[j]);
            i++;
            j--;
        }
    }
    quicksort(a, lo, j);
    quicksort(a, i, hi);
}

static void sift_down(int32_t *a, uint32_t root, uint32_t n) {
    for (;;) {
        uint32_t child = 2 * root + 1;
        if (child >= n) {
            return;
        }
        if (child + 1 < n && a[child + 1] > a[child]) {
            child++;
        }
        if (a[root] >= a[child]) {
            return;
        }
        swap(&a[root], &a[child]);
        root = child;
    }
}

static void heap_sort(int32_t *a, uint32_t n) {
    for (uint32_t i = n / 2; i-- > 0;) {
        sift_down(a, i, n);
    }
    for (uint32_t end = n; end-- > 1;) {
        swap(&a[0], &a[end]);
        sift_down(a, 0, end);
    }
}

static void merge_sort(int32_t *a, uint32_t n) {
    for (uint32_t width = 1; width < n; width *= 2) {
        for (uint32_t lo = 0; lo < n; lo += 2 * width) {
            uint32_t mid = lo + width < n ? lo + width : n;
            uint32_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            uint32_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                scratch[k++] = a[j] < a[i] ? a[j++] : a[i++];
            }
            while (i < mid) {
                scratch[k++] = a[i++];
            }
            while (j < hi) {
                scratch[k++] = a[j++];
            }
        }
        memcpy(a, scratch, n * sizeof(a[0]));
    }
}

static uint32_t fingerprint(struct out *o, const char *name, const int32_t *a, uint32_t n) {
    uint32_t h = 0;
    uint32_t sorted = 1;
    for (uint32_t i = 0; i < n; i++) {
        h = h * 0x9e3779b1u + (uint32_t)a[i];
        if (i > 0 && a[i - 1] > a[i]) {
            sorted = 0;
        }
    }
    out_str(o, name);
    out_str(o, sorted ? " sorted " : " unsorted ");
    out_hex32(o, h);
    out_char(o, '\n');
    return h;
}

static int32_t binary_search(const int32_t *a, uint32_t n, int32_t key) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && a[lo] == key ? (int32_t)lo : -1;
}

void run(struct out *o) {
    uint32_t state = seed;
    for (uint32_t i = 0; i < COUNT; i++) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        /* Signed keys in a small range, so there are duplicates and negatives. */
        original[i] = (int32_t)(state % 2001) - 1000;
    }
    fingerprint(o, "original", original, COUNT);

    memcpy(work, original, sizeof(work));
    insertion_sort(work, COUNT);
    fingerprint(o, "insertion", work, COUNT);
    out_str(o, "min ");
    out_i32_dec(o, work[0]);
    out_str(o, " median ");
    out_i32_dec(o, work[COUNT / 2]);
    out_str(o, " max ");
    out_i32_dec(o, work[COUNT - 1]);
    out_char(o, '\n');
    for (int32_t key = -1000; key <= 1000; key += 125) {
        out_str(o, "search ");
        out_i32_dec(o, key);
        out_char(o, ' ');
        out_i32_dec(o, binary_search(work, COUNT, key));
        out_char(o, '\n');
    }

    memcpy(work, original, sizeof(work));
    quicksort(work, 0, COUNT - 1);
    fingerprint(o, "quicksort", work, COUNT);

    memcpy(work, original, sizeof(work));
    heap_sort(work, COUNT);
    fingerprint(o, "heap", work, COUNT);

    memcpy(work, original, sizeof(work));
    merge_sort(work, COUNT);
    fingerprint(o, "merge", work, COUNT);
}
