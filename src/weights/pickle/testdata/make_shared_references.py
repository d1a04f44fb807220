# Writes the pickle torch.save would write for a checkpoint whose class-name table and
# FocalModulation settings are reached twice: first from the training arguments / the
# EMA copy, then from the model (pickle protocol 2, the protocol torch.save uses).
import pickle, sys, types
from collections import OrderedDict

def module(name):
    parent, _, child = name.rpartition(".")
    if parent and parent not in sys.modules: module(parent)
    m = types.ModuleType(name); sys.modules[name] = m
    if parent: setattr(sys.modules[parent], child, m)
    return m

tasks = module("ultralytics.nn.tasks")
blocks = module("ultralytics.nn.modules.block")
class DetectionModel: pass
class FocalModulation: pass
DetectionModel.__module__ = "ultralytics.nn.tasks"; tasks.DetectionModel = DetectionModel
FocalModulation.__module__ = "ultralytics.nn.modules.block"; blocks.FocalModulation = FocalModulation

names = {0: "cat", 1: "dog", 2: "bird"}
focal = FocalModulation()
focal.__dict__.update({"training": False, "_modules": OrderedDict(), "focal_level": 3,
                       "focal_window": 5, "focal_factor": 4, "normalize_modulator": True})
model = DetectionModel()
model.__dict__.update({"training": False, "_modules": OrderedDict([("9", focal)]), "names": names})
ckpt = {"train_args": {"names": names, "focal": focal}, "model": model}
sys.stdout.buffer.write(pickle.dumps(ckpt, protocol=2))
