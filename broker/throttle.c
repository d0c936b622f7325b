/* throttle.c — token buckets (see throttle.h). */
#include "broker/throttle.h"

static void refill(brk_bucket *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += b->rate * (double)(now_ms - b->last_ms) / 1000.0;
        if (b->tokens > b->burst) b->tokens = b->burst;
        b->last_ms = now_ms;
    }
}

void brk_bucket_init(brk_bucket *b, double rate, double burst, int64_t now_ms)
{
    b->rate = rate;
    b->burst = burst;
    b->tokens = burst;
    b->last_ms = now_ms;
}

bool brk_bucket_take(brk_bucket *b, double n, int64_t now_ms)
{
    refill(b, now_ms);
    if (b->tokens >= n || (n > b->burst && b->tokens >= b->burst)) {
        b->tokens -= n;
        return true;
    }
    return false;
}

bool brk_bucket_ready(brk_bucket *b, int64_t now_ms)
{
    refill(b, now_ms);
    return b->tokens >= 1.0;
}

void brk_bucket_charge(brk_bucket *b, double n, int64_t now_ms)
{
    refill(b, now_ms);
    b->tokens -= n;
}
