// Depthwise 2-D convolution: one k×k filter per channel, zero padding k/2, stride 1 or 2,
// plus bias and a fused activation, on NCHW f32 tensors. The launcher appends a row reader
// to this file: `depthwise_rows_vec4.wgsl` (stride 1, rows a multiple of 4 wide) or
// `depthwise_rows.wgsl` (any other). Sizes, kernel, stride, activation and block are
// filled in per variant (the double-brace placeholders): every loop has constant bounds,
// the padding tests become selects, and no parameter buffer is read or uploaded.
//
// Each invocation computes a block of BLOCK (4 or 8) adjacent outputs in each of two
// output rows of one channel of one image, on a 3-D grid of blocks, pairs of rows and
// images × channel groups. Which grid axis each takes is filled in per variant: on GPUs
// blocks run along x, so neighbouring invocations read neighbouring memory; on software
// adapters channels do, since llvmpipe spreads only a workgroup's x axis over its SIMD
// lanes and a plane's few blocks would leave most lanes idle.
// Both rows read the same input rows and kernel rows (shifted by STRIDE), so each is
// loaded once for both. A row's inputs are 16 values in four vec4s, the accumulators two
// vec4s: never arrays indexed in a loop, which lavapipe keeps in memory (1.5–1.8× slower). No
// invocation divides: that is slow on the SIMD lanes of software adapters and costs
// registers on GPUs.
//
// Every binding is read_write: cubecl allocates tensors from shared buffer pages, and
// wgpu refuses one page bound both read-only and writable in a dispatch.

@group(0) @binding(1) var<storage, read_write> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

const CHANNELS: u32 = {{ channels }}u;
// Workgroups along z per image.
const CHANNEL_GROUPS: u32 = {{ channel_groups }}u;
const HEIGHT: i32 = {{ height }};
const WIDTH: i32 = {{ width }};
const OUT_HEIGHT: u32 = {{ out_height }}u;
const OUT_WIDTH: i32 = {{ out_width }};
const KERNEL: i32 = {{ kernel }};
const STRIDE: i32 = {{ stride }};
const ACTIVATION: u32 = {{ activation }}u;
const BLOCK: i32 = {{ block }};
// Channels per workgroup.
const TILE_CHANNELS: u32 = {{ tile_channels }}u;
const ACT_SILU: u32 = 1u;
const ACT_GELU: u32 = 2u;

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): WGSL has no erf builtin.
fn erf(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(x) * (1.0 - poly * exp(-a * a));
}

fn activate(x: f32) -> f32 {
    if (ACTIVATION == ACT_SILU) {
        return x / (1.0 + exp(-x));
    }
    if (ACTIVATION == ACT_GELU) {
        return 0.5 * x * (1.0 + erf(x * 0.70710678118654752));
    }
    return x;
}

// BLOCK values along a row; `hi` is unused when BLOCK is 4.
struct Window {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// One input row as the reader sees it: where it starts, whether it lies inside the image
// (rows outside are zero padding), and the column the block's first window starts at.
struct Row {
    start: i32,
    inside: bool,
    x0: i32,
}

// 16 consecutive inputs of a row, from the block's first window column on.
struct RowInputs {
    a: vec4<f32>,
    b: vec4<f32>,
    c: vec4<f32>,
    d: vec4<f32>,
}

// The inputs one column further: drop the first, append zero.
fn shift(i: RowInputs) -> RowInputs {
    return RowInputs(vec4(i.a.yzw, i.b.x), vec4(i.b.yzw, i.c.x), vec4(i.c.yzw, i.d.x), vec4(i.d.yzw, 0.0));
}

// What the block's outputs read at the current kernel column: the first BLOCK inputs, or
// every other one at stride 2 (where BLOCK is 4, so 2·4 + 9 − 2 inputs fit in 16).
fn window(i: RowInputs) -> Window {
    if (STRIDE == 2) {
        return Window(vec4(i.a.xz, i.b.xz), vec4(0.0));
    }
    return Window(i.a, i.b);
}

// One kernel row's weights, from `a.x` on (k ≤ 9 of the 12 places are used).
struct WeightRow {
    a: vec4<f32>,
    b: vec4<f32>,
    c: vec4<f32>,
}

// The first `count` (a constant once inlined) of the 4 weights from `index`; zero after.
fn weights_some(index: u32, count: i32) -> vec4<f32> {
    var w = vec4(0.0);
    if (count > 0) {
        w.x = weight[index];
    }
    if (count > 1) {
        w.y = weight[index + 1u];
    }
    if (count > 2) {
        w.z = weight[index + 2u];
    }
    if (count > 3) {
        w.w = weight[index + 3u];
    }
    return w;
}

fn read_weights(first: u32) -> WeightRow {
    return WeightRow(weights_some(first, KERNEL), weights_some(first + 4u, KERNEL - 4), weights_some(first + 8u, KERNEL - 8));
}

// Adds one kernel row's products to `acc`: at each kernel column, the window times the
// first weight, then both shift on by one.
fn accumulate(acc_in: Window, row_inputs: RowInputs, row_weights: WeightRow) -> Window {
    var acc = acc_in;
    var inputs = row_inputs;
    var weights = row_weights;
    for (var kx = 0; kx < KERNEL; kx++) {
        let w = weights.a.x;
        let x = window(inputs);
        acc = Window(acc.lo + x.lo * w, acc.hi + x.hi * w);
        inputs = shift(inputs);
        weights = WeightRow(vec4(weights.a.yzw, weights.b.x), vec4(weights.b.yzw, weights.c.x), vec4(weights.c.yzw, 0.0));
    }
    return acc;
}

fn store(out_row: u32, x: i32, value: f32) {
    if (x < OUT_WIDTH) {
        output[out_row + u32(x)] = activate(value);
    }
}

// The block's outputs from column `ox0` of the output row starting at `out_row`.
fn store_block(out_row: u32, ox0: i32, acc: Window) {
    store(out_row, ox0, acc.lo.x);
    store(out_row, ox0 + 1, acc.lo.y);
    store(out_row, ox0 + 2, acc.lo.z);
    store(out_row, ox0 + 3, acc.lo.w);
    if (BLOCK == 8) {
        store(out_row, ox0 + 4, acc.hi.x);
        store(out_row, ox0 + 5, acc.hi.y);
        store(out_row, ox0 + 6, acc.hi.z);
        store(out_row, ox0 + 7, acc.hi.w);
    }
}

@compute @workgroup_size({{ tile_x }}, {{ tile_y }}, {{ tile_z }})
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    // Dividing the workgroup's index costs one division per workgroup, not per invocation.
    let image = group.{{ channel_axis }} / CHANNEL_GROUPS;
    let channel = (group.{{ channel_axis }} - image * CHANNEL_GROUPS) * TILE_CHANNELS + local.{{ channel_axis }};
    let ox0 = i32(gid.{{ block_axis }}) * BLOCK;
    let oy = gid.{{ pair_axis }} * 2u;
    if (ox0 >= OUT_WIDTH || oy >= OUT_HEIGHT || channel >= CHANNELS) {
        return;
    }
    let plane = image * CHANNELS + channel;
    let y0 = i32(oy) * STRIDE - KERNEL / 2;
    let input_base = i32(plane) * HEIGHT * WIDTH;
    let weight_base = channel * u32(KERNEL * KERNEL);
    let b = bias[channel];
    // Output rows oy (`top`) and oy + 1 (`bottom`, which reads the input rows STRIDE lower
    // with the kernel row `top` used STRIDE input rows before: `lagged`).
    var top = Window(vec4(b), vec4(b));
    var bottom = top;
    let none = WeightRow(vec4(0.0), vec4(0.0), vec4(0.0));
    var previous = none;
    var before_previous = none;
    for (var r = 0; r < KERNEL + STRIDE; r++) {
        let y = y0 + r;
        let inputs = read_row(Row(input_base + clamp(y, 0, HEIGHT - 1) * WIDTH, y >= 0 && y < HEIGHT, ox0 * STRIDE - KERNEL / 2));
        var current = none;
        if (r < KERNEL) {
            current = read_weights(weight_base + u32(r * KERNEL));
            top = accumulate(top, inputs, current);
        }
        if (r >= STRIDE) {
            var lagged = previous;
            if (STRIDE == 2) {
                lagged = before_previous;
            }
            bottom = accumulate(bottom, inputs, lagged);
        }
        before_previous = previous;
        previous = current;
    }
    let out_row = (plane * OUT_HEIGHT + oy) * u32(OUT_WIDTH);
    store_block(out_row, ox0, top);
    if (oy + 1u < OUT_HEIGHT) {
        store_block(out_row + u32(OUT_WIDTH), ox0, bottom);
    }
}
