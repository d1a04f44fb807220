// Frame pre-processing in one dispatch: packed 8-bit RGB or RGBA bytes in, the letterboxed
// model input out (NCHW f32, RGB, /255, grey 114 padding). The resize repeats the CPU
// path's integer arithmetic (OpenCV's INTER_LINEAR on uint8) tap for tap, so both agree
// exactly. One invocation per output value.

@group(0) @binding(0) var<storage, read_write> pixels: array<u32>;
// Header (9 words: bytes per pixel, row bytes, resized w/h, canvas w/h, pad left/top,
// total outputs), then 4 words per resized column (x0, x1, a0, a1) and per resized row.
@group(0) @binding(1) var<storage, read_write> geometry: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

const WORKGROUP: u32 = 256u;
const HEADER: u32 = 9u;
const PAD_VALUE: f32 = 114.0;

fn byte_at(offset: u32) -> i32 {
    return i32((pixels[offset >> 2u] >> ((offset & 3u) * 8u)) & 0xffu);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * WORKGROUP;
    let total = geometry[8];
    if (index >= total) {
        return;
    }
    let bytes_per_pixel = geometry[0];
    let row_bytes = geometry[1];
    let resized_width = geometry[2];
    let resized_height = geometry[3];
    let canvas_width = geometry[4];
    let canvas_height = geometry[5];
    let pad_left = geometry[6];
    let pad_top = geometry[7];

    let x = index % canvas_width;
    let rest = index / canvas_width;
    let y = rest % canvas_height;
    let channel = rest / canvas_height;

    if (x < pad_left || y < pad_top || x >= pad_left + resized_width || y >= pad_top + resized_height) {
        output[index] = PAD_VALUE / 255.0;
        return;
    }
    let column = HEADER + 4u * (x - pad_left);
    let row = HEADER + 4u * resized_width + 4u * (y - pad_top);
    let x0 = geometry[column] * bytes_per_pixel + channel;
    let x1 = geometry[column + 1u] * bytes_per_pixel + channel;
    let a0 = i32(geometry[column + 2u]);
    let a1 = i32(geometry[column + 3u]);
    let y0 = geometry[row] * row_bytes;
    let y1 = geometry[row + 1u] * row_bytes;
    let b0 = i32(geometry[row + 2u]);
    let b1 = i32(geometry[row + 3u]);

    let d0 = byte_at(y0 + x0) * a0 + byte_at(y0 + x1) * a1;
    let d1 = byte_at(y1 + x0) * a0 + byte_at(y1 + x1) * a1;
    let value = (((b0 * (d0 >> 4u)) >> 16u) + ((b1 * (d1 >> 4u)) >> 16u) + 2) >> 2u;
    output[index] = f32(clamp(value, 0, 255)) / 255.0;
}
