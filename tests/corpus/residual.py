"""07_residual: ResNet basic blocks, the zero-padding shortcut and the post-LN sublayer connection."""
from . import Implementation

IMPLEMENTATIONS = [
    Implementation(
        name="c_torchvision_basicblock",
        assignment="07_residual",
        source=("pytorch/vision, torchvision/models/resnet.py, commit 054e54c573ba46e5b9c63f1eea3ad4d103afbea2, "
                "BasicBlock, conv3x3, conv1x1 (and the downsample built in ResNet._make_layer)"),
        cells={"BasicBlock": '''\
def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    """3x3 convolution with padding"""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride,
                     padding=dilation, groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution"""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, groups=1,
                 base_width=64, dilation=1, norm_layer=None):
        super(BasicBlock, self).__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        # the downsample that ResNet._make_layer builds and passes in
        downsample = None
        if stride != 1 or inplanes != planes * self.expansion:
            downsample = nn.Sequential(
                conv1x1(inplanes, planes * self.expansion, stride),
                norm_layer(planes * self.expansion),
            )
        if groups != 1 or base_width != 64:
            raise ValueError('BasicBlock only supports groups=1 and base_width=64')
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        # Both self.conv1 and self.downsample layers downsample the input when stride != 1
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)

        return out
'''},
        adapted="torchvision's constructor takes a ready downsample module; here it is built inside "
                "__init__ exactly as ResNet._make_layer builds it, so the signature is the contract's "
                "(in_channels, out_channels, stride).",
    ),
    Implementation(
        name="c_kuangliu_basicblock",
        assignment="07_residual",
        source=("kuangliu/pytorch-cifar, models/resnet.py, commit 49b7aa97b0c12fe0d4054e670403a16b6b834ddd, "
                "BasicBlock"),
        cells={"BasicBlock": '''\
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super(BasicBlock, self).__init__()
        self.conv1 = nn.Conv2d(
            in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3,
                               stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

        self.downsample = nn.Sequential()
        if stride != 1 or in_planes != self.expansion*planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion*planes,
                          kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion*planes)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.downsample(x)
        out = F.relu(out)
        return out
'''},
        loses={"test_basic_block_layout": "conv1, bn1, relu, conv2, bn2"},
        adapted="shortcut renamed downsample. The numbers are torchvision's, but the layout deviates: "
                "there is no relu module (F.relu is called) and the identity shortcut is an empty "
                "nn.Sequential, not None.",
    ),
    Implementation(
        name="c_d2l_residual",
        assignment="07_residual",
        source=("d2l-ai/d2l-en, d2l/torch.py, commit 23d7a5aecceee57d1292c56e90cce307f183bb0a, Residual"),
        cells={"BasicBlock": '''\
class BasicBlock(nn.Module):
    """The Residual block of ResNet models."""
    def __init__(self, input_channels, num_channels, stride=1):
        super().__init__()
        use_1x1conv = stride != 1 or input_channels != num_channels
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1,
                               stride=stride)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.downsample = nn.Conv2d(input_channels, num_channels, kernel_size=1,
                                        stride=stride)
        else:
            self.downsample = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.downsample:
            X = self.downsample(X)
        Y += X
        return F.relu(Y)
'''},
        loses={
            "test_basic_block_layout": "conv1, bn1, relu, conv2, bn2",
            "test_basic_block_identity": "bias",
            "test_basic_block_downsample": "downsample.0.weight",
        },
        adapted="Residual renamed BasicBlock, conv3 renamed downsample, strides renamed stride (a keyword the contract names); LazyConv2d/LazyBatchNorm2d written "
                "with their input sizes; use_1x1conv computed as d2l's ResNet sets it (stride or width "
                "change). Deviates from torchvision's layout: the convolutions keep their bias, the 1x1 "
                "shortcut has no BatchNorm, and there is no relu module.",
    ),
    Implementation(
        name="c_akamaster_zero_pad",
        assignment="07_residual",
        source=("akamaster/pytorch_resnet_cifar10, resnet.py, commit d5489e8995e81e91ce6b1d69dcc98ad579b0b153, "
                "LambdaLayer and BasicBlock's option A shortcut"),
        cells={"zero_pad_shortcut": '''\
class LambdaLayer(nn.Module):
    def __init__(self, lambd):
        super(LambdaLayer, self).__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


def zero_pad_shortcut(x, out_channels, stride):
    planes = out_channels
    shortcut = LambdaLayer(lambda x:
                           F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4), "constant", 0))
    return shortcut(x)
'''},
        loses={"test_zero_pad_shortcut": "both sides"},
        adapted="The option-A shortcut lambda of BasicBlock, built for out_channels (= planes) and applied "
                "to x. Deviates: it assumes out_channels = 2 * in_channels and stride 2, as in CIFAR "
                "ResNets: it subsamples with ::2 whatever the stride, puts planes // 4 zero channels on "
                "both sides instead of appending them, and raises no ValueError.",
    ),
    Implementation(
        name="c_d2l_addnorm",
        assignment="07_residual",
        source=("d2l-ai/d2l-en, d2l/torch.py, commit 23d7a5aecceee57d1292c56e90cce307f183bb0a, AddNorm"),
        cells={"SublayerConnection": '''\
class SublayerConnection(nn.Module):
    """The residual connection followed by layer normalization."""
    def __init__(self, norm_shape, dropout=0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(norm_shape)

    def forward(self, X, sublayer):
        Y = sublayer(X)
        return self.norm(self.dropout(Y) + X)
'''},
        adapted="AddNorm renamed, ln renamed norm; d2l's forward(X, Y) receives the sublayer's output, "
                "the contract passes the sublayer itself, so Y = sublayer(X) is computed first.",
    ),
    Implementation(
        name="c_annotated_sublayer",
        assignment="07_residual",
        source=("harvardnlp/annotated-transformer, the_annotated_transformer.py, "
                "commit debc9fd747bb2123160a98046ad1c2d4da44a567, SublayerConnection and LayerNorm"),
        cells={"SublayerConnection": '''\
class LayerNorm(nn.Module):
    "Construct a layernorm module (See citation for details)."

    def __init__(self, features, eps=1e-6):
        super(LayerNorm, self).__init__()
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.weight * (x - mean) / (std + self.eps) + self.bias


class SublayerConnection(nn.Module):
    """
    A residual connection followed by a layer norm.
    Note for code simplicity the norm is first as opposed to last.
    """

    def __init__(self, size, dropout=0.0):
        super(SublayerConnection, self).__init__()
        self.norm = LayerNorm(size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, sublayer):
        "Apply residual connection to any sublayer with the same size."
        return x + self.dropout(sublayer(self.norm(x)))
'''},
        loses={"test_sublayer_connection": "nn.LayerNorm"},
        adapted="LayerNorm's a_2 and b_2 renamed weight and bias; dropout gets a default. Deviates twice: "
                "it is pre-LN, x + dropout(sublayer(norm(x))), as its docstring says, and its norm is the "
                "file's own LayerNorm (unbiased std, eps outside the root), not nn.LayerNorm.",
    ),
]
