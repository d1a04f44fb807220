//! Heatmap overlays coloured on the GPU: `shaders/heatmap_overlay.wgsl` runs inside egui's
//! own wgpu render pass (a paint callback), reading the raw map values, so only a few
//! hundred floats cross to the GPU per map and frame, and upsampling and colouring cost the
//! CPU nothing.

use std::borrow::Cow;
use std::collections::HashMap;

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, RenderState, ScreenDescriptor};
use eframe::wgpu;
use eframe::wgpu::util::DeviceExt;
use egui::Rect;

use crate::inference::preprocess::Letterbox;
use crate::output::attention_maps::{Colormap, Heatmap};

static SHADER: &str = include_str!("../../shaders/heatmap_overlay.wgsl");

/// The pipeline, made once per window for its target format.
struct OverlayPipeline {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    srgb_target: bool,
}

/// This frame's inputs of each overlay, by map key.
#[derive(Default)]
struct OverlayBindGroups(HashMap<String, wgpu::BindGroup>);

/// Build the overlay pipeline into the renderer's resources.
pub fn install(render_state: &RenderState) {
    let device = &render_state.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("heatmap overlay"),
        source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(SHADER)),
    });
    let visible_to_fragment = |binding, ty| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("heatmap overlay"),
        entries: &[
            visible_to_fragment(0, wgpu::BufferBindingType::Uniform),
            visible_to_fragment(1, wgpu::BufferBindingType::Storage { read_only: true }),
        ],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("heatmap overlay"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("heatmap overlay"),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some("vs_main"),
            compilation_options: Default::default(),
            buffers: &[],
        },
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some("fs_main"),
            compilation_options: Default::default(),
            targets: &[Some(wgpu::ColorTargetState {
                format: render_state.target_format,
                blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
                write_mask: wgpu::ColorWrites::ALL,
            })],
        }),
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        multiview_mask: None,
        cache: None,
    });
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(OverlayPipeline {
            pipeline,
            layout,
            srgb_target: render_state.target_format.is_srgb(),
        });
}

/// One map laid over the video's rectangle `rect`.
pub fn overlay(
    rect: Rect,
    heatmap: &Heatmap,
    letterbox: &Letterbox,
    colormap: Colormap,
    opacity: f32,
) -> egui::PaintCallback {
    let (gain, pad_x, pad_y) = letterbox.box_transform();
    let cell_x = letterbox.canvas_width as f32 / heatmap.width as f32;
    let cell_y = letterbox.canvas_height as f32 / heatmap.height as f32;
    let to_grid = [
        letterbox.source_width as f32 * gain / cell_x,
        letterbox.source_height as f32 * gain / cell_y,
        pad_x / cell_x,
        pad_y / cell_y,
    ];
    egui_wgpu::Callback::new_paint_callback(
        rect,
        OverlayCallback {
            key: heatmap.key(),
            to_grid,
            grid_size: [heatmap.width as u32, heatmap.height as u32],
            colormap: match colormap {
                Colormap::Turbo => 0,
                Colormap::Viridis => 1,
            },
            value_min: heatmap.min,
            value_span: heatmap.max - heatmap.min,
            opacity: opacity.clamp(0.0, 1.0),
            values: heatmap.values.clone(),
        },
    )
}

struct OverlayCallback {
    key: String,
    to_grid: [f32; 4],
    grid_size: [u32; 2],
    colormap: u32,
    value_min: f32,
    value_span: f32,
    opacity: f32,
    values: Vec<f32>,
}

impl OverlayCallback {
    /// The shader's `Params`, laid out as WGSL's uniform rules place them (48 bytes).
    fn params(&self, srgb_target: bool) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(48);
        for v in self.to_grid {
            bytes.extend(v.to_le_bytes());
        }
        for v in [
            self.grid_size[0],
            self.grid_size[1],
            self.colormap,
            u32::from(srgb_target),
        ] {
            bytes.extend(v.to_le_bytes());
        }
        for v in [self.value_min, self.value_span, self.opacity, 0.0] {
            bytes.extend(v.to_le_bytes());
        }
        bytes
    }
}

impl CallbackTrait for OverlayCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        _queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(pipeline) = resources.get::<OverlayPipeline>() else {
            return Vec::new();
        };
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("heatmap overlay params"),
            contents: &self.params(pipeline.srgb_target),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let values: Vec<u8> = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let values = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("heatmap overlay values"),
            contents: &values,
            usage: wgpu::BufferUsages::STORAGE,
        });
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("heatmap overlay"),
            layout: &pipeline.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: values.as_entire_binding(),
                },
            ],
        });
        resources
            .entry::<OverlayBindGroups>()
            .or_insert_with(OverlayBindGroups::default)
            .0
            .insert(self.key.clone(), group);
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let (Some(pipeline), Some(groups)) = (
            resources.get::<OverlayPipeline>(),
            resources.get::<OverlayBindGroups>(),
        ) else {
            return;
        };
        let Some(group) = groups.0.get(&self.key) else {
            return;
        };
        render_pass.set_pipeline(&pipeline.pipeline);
        render_pass.set_bind_group(0, group, &[]);
        render_pass.draw(0..3, 0..1);
    }
}
