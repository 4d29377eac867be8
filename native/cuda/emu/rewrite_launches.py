#!/usr/bin/env python3
"""Rewrites CUDA kernel launches for the CPU emulator (native/cuda/emu/cuda_emu.h).

    kernel<T><<<grid, block>>>(a, b);   ->   ::emu::launch(grid, block, [&] { kernel<T>(a, b); });
    kernel<<<grid, block, 0, stream>>>(a);  ->   the same (the stream is dropped)

Usage: rewrite_launches.py IN OUT. A launch must start a statement: the kernel expression runs from the
first non-blank character of its line to '<<<', or, when '<<<' starts a line, from the first non-blank
character of the line above (as clang-format breaks long launches), as every launch in native/cuda does.
"""
import sys


def split_top(s, sep=','):
    """Split s at top-level separators (outside (), [], {})."""
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def rewrite(src):
    out, i = '', 0
    while True:
        j = src.find('<<<', i)
        if j < 0:
            return out + src[i:]
        line_start = src.rfind('\n', 0, j) + 1
        stmt = line_start
        while src[stmt] in ' \t':
            stmt += 1
        if stmt == j:  # `kernel<...>` on the line above and `<<<` starting this one (as clang-format breaks it)
            line_start = src.rfind('\n', 0, line_start - 1) + 1
            stmt = line_start
            while src[stmt] in ' \t':
                stmt += 1
        # a mention in a comment: leave it alone
        if src[stmt:stmt + 2] in ('//', '/*') or src[stmt] == '*':
            out += src[i:j + 3]
            i = j + 3
            continue
        kernel = ' '.join(src[stmt:j].split())
        k = src.find('>>>', j)
        config = split_top(src[j + 3:k])
        # <<<grid, block, shared, stream>>>: dynamic shared memory is not supported; a stream is
        # dropped (the emulator runs launches in program order, one valid schedule of any streams)
        if len(config) == 4 and config[2] == '0':
            config = config[:2]
        if len(config) != 2:
            raise SystemExit(f'unsupported launch configuration (dynamic shared memory?): {src[j:k + 3]}')
        p = k + 3
        while src[p] in ' \t\n':
            p += 1
        assert src[p] == '(', src[j:p + 20]
        depth, q = 0, p
        while True:
            if src[q] == '(':
                depth += 1
            elif src[q] == ')':
                depth -= 1
                if depth == 0:
                    break
            q += 1
        args = src[p + 1:q]
        r = q + 1
        while src[r] in ' \t\n':
            r += 1
        assert src[r] == ';', src[j:r + 10]
        out += src[i:stmt]
        out += f'::emu::launch(dim3({config[0]}), dim3({config[1]}), [&] {{ {kernel}({args}); }});'
        i = r + 1


if __name__ == '__main__':
    with open(sys.argv[1]) as f:
        text = f.read()
    with open(sys.argv[2], 'w') as f:
        f.write(rewrite(text))
