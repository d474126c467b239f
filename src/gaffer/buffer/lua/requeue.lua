-- requeue: ARGV[2] lease token, ARGV[3] error text, ARGV[4..] run segments in pop order.
-- Entries still in flight under this lease go back to the front of their lists (keeping their
-- order), attempts + 1. Returns the new attempts per segment (-1: not in flight under the
-- lease any more, e.g. reclaimed by the sweeper and taken by another drainer).
local segs = {}
for i = 4, #ARGV do segs[#segs + 1] = ARGV[i] end
return put_back(segs, ARGV[2], ARGV[3])
